"""Turns against the fake provider: partial and failed turns, timeouts, propagation, routing fallback."""

import time
from decimal import Decimal

import pytest
from django.utils import timezone

from orchestration.testing.fake_server import Step
from orchestration.turns import turn_prepare, turn_request_build, turn_run
from sessions_app.models import ChatSession, Turn
from usage.models import CreditAccount, LlmCallEvent

pytestmark = pytest.mark.django_db

WRITER, CRITIC = "deepseek/deepseek-chat", "openai/gpt-4o-mini"


def test_later_agent_sees_earlier_reply_of_the_same_turn(fake_llm, turn_post):
    fake_llm.enqueue(Step(model=WRITER, reply="The keeper lit the lamp."))
    response = turn_post("@writer @critic begin")
    assert response.status_code == 201
    writer_call, critic_call = fake_llm.requests
    assert writer_call.model == WRITER and critic_call.model == CRITIC
    assert writer_call.messages[-1] == {"role": "user", "content": "@writer @critic begin"}
    assert critic_call.messages[-2:] == [
        {"role": "user", "content": "@writer @critic begin"},
        {"role": "assistant", "content": "Writer: The keeper lit the lamp."},
    ]


def test_one_agent_failing_gives_partial_turn_with_the_others_reply(user, fake_llm, turn_post):
    fake_llm.enqueue(Step(model=WRITER, status=500))
    balance = CreditAccount.objects.get(user=user).balance
    response = turn_post("@writer @critic go", mode="manual")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "partial"
    assert body["responding_agent_keys"] == ["critic"]
    assert body["agent_errors"] == [{"agent_key": "writer", "code": "provider_unavailable"}]
    assert body["assistant_output"].startswith("Critic: ")
    events = {e.agent_key: e for e in LlmCallEvent.objects.filter(turn_id=body["id"])}
    assert events["writer"].status == "failed" and not events["writer"].billable
    assert events["writer"].credits_burned == 0
    assert events["critic"].status == "succeeded" and events["critic"].billable
    assert CreditAccount.objects.get(user=user).balance == balance - events["critic"].credits_burned


def test_all_agents_failing_is_502_with_the_failed_turn_recorded(user, fake_llm, turn_post):
    fake_llm.enqueue(Step(status=503), Step(status=429, retry_after=1))
    balance = CreditAccount.objects.get(user=user).balance
    response = turn_post("@writer @critic go")
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "llm_unavailable"
    turn = Turn.objects.get(pk=body["turn_id"])
    assert turn.status == "failed" and turn.turn_index == 1 and turn.assistant_output == ""
    assert {e["code"] for e in body["errors"]} == {"provider_unavailable", "provider_rate_limited"}
    assert LlmCallEvent.objects.filter(turn_id=turn.pk, billable=False).count() == 2
    assert CreditAccount.objects.get(user=user).balance == balance


def test_failed_turns_stay_out_of_later_context(session, fake_llm, turn_post):
    fake_llm.enqueue(Step(status=500))
    assert turn_post("@writer SECRET-FAILED-INPUT").status_code == 502
    assert turn_post("@writer next").status_code == 201
    sent = " ".join(m["content"] for m in fake_llm.requests[-1].messages)
    assert "SECRET-FAILED-INPUT" not in sent
    assert Turn.objects.filter(session=session).order_by("turn_index").values_list("turn_index", "status")[
        1
    ] == (
        2,
        "completed",
    )


def test_slow_provider_is_cut_at_the_timeout(settings, fake_llm, turn_post):
    settings.LLM_TIMEOUT_SECONDS = 0.4
    fake_llm.enqueue(Step(model=WRITER, delay=2.0))
    started = time.monotonic()
    response = turn_post("@writer @critic quickly")
    elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert response.json()["agent_errors"] == [{"agent_key": "writer", "code": "provider_timeout"}]
    assert elapsed < 0.4 * (settings.LLM_MAX_RETRIES + 1) + 1.0


def test_missing_usage_is_billed_on_estimated_tokens(fake_llm, turn_post):
    fake_llm.enqueue(Step(reply="An estimated reply.", no_usage=True))
    response = turn_post("@writer estimate")
    event = LlmCallEvent.objects.get(turn_id=response.json()["id"])
    assert event.tokens_estimated and event.input_tokens > 0 and event.output_tokens == 4
    assert event.credits_burned > 0 and event.provider_cost_usd is None


def test_provider_cost_and_generation_id_are_stored_beside_ours(fake_llm, turn_post):
    fake_llm.enqueue(
        Step(reply="ok", usage={"prompt_tokens": 100, "completion_tokens": 10, "cost": 0.0000385})
    )
    response = turn_post("@writer cost")
    event = LlmCallEvent.objects.get(turn_id=response.json()["id"])
    assert event.provider_cost_usd == Decimal("0.0000385")
    assert event.provider_generation_id.startswith("gen-fake-")
    assert (event.input_tokens, event.output_tokens) == (100, 10)
    assert event.cost_usd == Decimal("0.0000385")  # 100 × 0.30/M + 10 × 0.85/M


@pytest.mark.parametrize(
    "answer",
    ['{"selected_agent_keys": ["ghost"]}', "not json at all", '{"selected_agent_keys": []}', '{"keys": 1}'],
)
def test_orchestrator_falls_back_to_first_agent_on_bad_routing(fake_llm, answer, turn_post):
    fake_llm.enqueue(Step(model=WRITER, reply=answer))  # the manager model is deepseek too
    response = turn_post("who should answer?", mode="orchestrator")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["routing_used_fallback"] is True and body["responding_agent_keys"] == ["writer"]
    routing = LlmCallEvent.objects.get(turn_id=body["id"], purpose="routing")
    assert routing.billable is False


def test_orchestrator_accepts_legacy_single_key_and_dedupes(fake_llm, turn_post):
    fake_llm.enqueue(Step(model=WRITER, reply='{"selected_agent_key": "critic"}'))
    body = turn_post("critique please", mode="orchestrator").json()
    assert body["responding_agent_keys"] == ["critic"] and body["routing_used_fallback"] is False
    fake_llm.enqueue(Step(model=WRITER, reply='{"selected_agent_keys": ["critic", "writer", "critic"]}'))
    body = turn_post("both please", mode="orchestrator").json()
    assert body["responding_agent_keys"] == ["critic", "writer"]


def test_a_provider_bug_fails_only_that_call(user, session):
    """A gateway that raises something unexpected: that agent fails, the other still answers."""
    from orchestration.llm.offline import OfflineGateway
    from orchestration.turns import turn_execute, turn_request_build

    class BrokenForWriter(OfflineGateway):
        def complete(self, request):
            if request.agent_key == "writer":
                raise KeyError("choices")
            return super().complete(request)

    outcome = turn_execute(
        request=turn_request_build(
            user=user, session_id=session.pk, user_input="@writer @critic go", mode="manual"
        ),
        gateway=BrokenForWriter(),
    )
    assert outcome.turn.status == "partial"
    assert outcome.turn.agent_errors == [{"agent_key": "writer", "code": "provider_error"}]
    assert LlmCallEvent.objects.filter(turn_id=outcome.turn.pk).count() == 2


def test_a_turns_claim_lasts_as_long_as_a_stream_may_wait_for_its_first_chunk(
    user, session, fake_llm, settings
):
    """A first-token timeout longer than a plain call's deadline sizes the session claim: the claim
    is never lost while a stream still waits, legitimately, for its first chunk."""
    settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES = 5.0, 0
    settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = 100.0
    settings.TURN_CLAIM_MARGIN_SECONDS = 30
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 1  # one deployment per call (each more multiplies the wait)
    request = turn_request_build(user=user, session_id=session.pk, user_input="@writer hi", mode="manual")
    progress = turn_prepare(request)
    try:
        ttl = (progress.claim.expires_at - timezone.now()).total_seconds()
        assert 100 * 2 + 30 - 5 < ttl <= 100 * 2 + 30  # one agent and the routing slot, at 100 s each
    finally:
        turn_run(progress)
    assert ChatSession.objects.get(pk=session.pk).claim_token is None
