"""Discussions through the HTTP API against the fake provider (the real ``openai`` client), the
manager's JSON scripted: every stop condition, the manager's failures, repeats, the budget and the
money."""

import json
from decimal import Decimal

import pytest

from orchestration.testing.fake_server import Step
from sessions_app.models import Message, Turn, TurnContextAudit
from usage.models import CreditAccount, CreditHold, LlmCallEvent
from usage.tests.factories import balance_set

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen")),
]

WRITER, CRITIC, MANAGER = "deepseek/deepseek-chat", "qwen/qwen-2.5-72b-instruct", "openai/gpt-4o-mini"


@pytest.fixture
def manager(fake_llm, settings):
    """The manager on a model of its own (gpt-4o-mini), so the script tells its calls apart."""
    settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS = "gpt-4o-mini"
    return fake_llm


def decide(*keys: str, done: bool = False, reason: str = "") -> Step:
    return Step(
        model=MANAGER, reply=json.dumps({"selected_agent_keys": list(keys), "done": done, "reason": reason})
    )


def discuss(api_client, session, text: str, *, mode: str = "orchestrator", **discussion):
    return api_client.post(
        f"/api/v1/sessions/{session.pk}/turns",
        {"user_input": text, "mode": mode, "discussion": discussion},
        format="json",
    )


def speakers(body: dict) -> list[str]:
    return [m["agent_key"] for m in body["messages"] if m["role"] == "assistant"]


def test_roundtable_rounds_every_agent_n_times_each_seeing_all_before_it(api_client, session, fake_llm):
    response = discuss(api_client, session, "Plan the launch", mode="roundtable", rounds=2)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "completed" and body["stop_reason"] == "rounds"
    assert speakers(body) == ["writer", "critic", "writer", "critic"]
    assert [m["order"] for m in body["messages"]] == [0, 1, 2, 3, 4]
    # The fourth speaker saw the three replies before it.
    last_call = [r for r in fake_llm.requests if r.model == CRITIC][-1]
    assert [m["role"] for m in last_call.messages[-3:]] == ["assistant"] * 3
    assert LlmCallEvent.objects.filter(turn_id=body["id"], purpose="agent_reply").count() == 4
    assert [s["agent_key"] for s in body["discussion"]["steps"]] == ["writer", "critic", "writer", "critic"]


def test_a_manager_that_never_says_done_stops_at_max_steps(api_client, session, manager):
    manager.enqueue(*[decide("writer" if i % 2 == 0 else "critic") for i in range(10)])
    response = discuss(api_client, session, "Argue it out", until={"max_steps": 3})
    body = response.json()
    assert response.status_code == 201, body
    assert body["stop_reason"] == "max_steps" and body["status"] == "completed"
    assert speakers(body) == ["writer", "critic", "writer"]
    routing = LlmCallEvent.objects.filter(turn_id=body["id"], purpose="routing")
    assert routing.count() == 3 and not any(e.billable for e in routing)
    steps = body["discussion"]["steps"]
    assert [s["decision"]["raw"] for s in steps] == [
        json.dumps({"selected_agent_keys": [k], "done": False, "reason": ""})
        for k in ("writer", "critic", "writer")
    ]


def test_the_manager_saying_done_stops_the_discussion_with_its_reason(api_client, session, manager):
    manager.enqueue(decide("writer"), decide("critic"), decide(done=True, reason="settled"))
    body = discuss(api_client, session, "Decide", until={"max_steps": 8}).json()
    assert body["stop_reason"] == "manager_done" and speakers(body) == ["writer", "critic"]
    assert body["discussion"]["steps"][-1]["decision"]["reason"] == "settled"


def test_a_stop_phrase_from_the_named_agent_stops_it_not_from_another(api_client, session, manager):
    manager.enqueue(*[decide("writer" if i % 2 == 0 else "critic") for i in range(10)])
    manager.enqueue(
        Step(model=WRITER, reply="I think we AGREED already."),  # not the named agent: goes on
        Step(model=CRITIC, reply="Not yet."),
        Step(model=WRITER, reply="Revised."),
        Step(model=CRITIC, reply="Fine, agreed."),
    )
    body = discuss(
        api_client, session, "Review", until={"max_steps": 8, "stop_phrase": "AGREED", "stop_agent": "critic"}
    ).json()
    assert body["stop_reason"] == "stop_phrase" and speakers(body) == ["writer", "critic", "writer", "critic"]


def test_a_manager_that_always_names_an_unknown_agent_falls_back_in_order_without_repeats(
    api_client, session, manager
):
    manager.enqueue(*[decide("ghost") for _ in range(10)])
    body = discuss(api_client, session, "Go", until={"max_steps": 4}).json()
    assert body["stop_reason"] == "max_steps" and body["routing_used_fallback"] is True
    assert speakers(body) == ["writer", "critic", "writer", "critic"]
    assert all(s["chosen_by"] == "fallback" for s in body["discussion"]["steps"])


def test_repeats_disallowed_the_previous_speaker_is_never_next(api_client, session, manager):
    # The manager insists on the writer: only its first pick is obeyed, the fallback alternates.
    manager.enqueue(*[decide("writer") for _ in range(10)])
    body = discuss(api_client, session, "Go", until={"max_steps": 4}).json()
    assert speakers(body) == ["writer", "critic", "writer", "critic"]
    chosen = [s["chosen_by"] for s in body["discussion"]["steps"]]
    assert chosen == ["manager", "fallback", "manager", "fallback"]


def test_repeats_allowed_when_asked(api_client, session, manager):
    manager.enqueue(*[decide("writer") for _ in range(10)])
    body = discuss(api_client, session, "Go", until={"max_steps": 3}, allow_repeat=True).json()
    assert speakers(body) == ["writer", "writer", "writer"]


@pytest.mark.room(("writer", "deepseek"))
def test_one_agent_repeats_disallowed_stops_for_want_of_a_speaker(api_client, session, manager):
    manager.enqueue(*[decide("writer") for _ in range(5)])
    body = discuss(api_client, session, "Go", until={"max_steps": 4}).json()
    assert body["stop_reason"] == "no_speaker" and speakers(body) == ["writer"]


def test_max_seconds_stops_after_the_running_step(api_client, session, manager):
    manager.enqueue(*[decide("writer" if i % 2 == 0 else "critic") for i in range(10)])
    manager.enqueue(Step(model=WRITER, reply="Slow thoughts.", delay=0.3))
    body = discuss(api_client, session, "Go", until={"max_steps": 8, "max_seconds": 0.2}).json()
    assert body["stop_reason"] == "max_seconds" and speakers(body) == ["writer"]


def test_combine_all_waits_for_every_condition(api_client, session, manager):
    manager.enqueue(*[decide("writer" if i % 2 == 0 else "critic") for i in range(10)])
    # The writer's answer takes 50 ms: the 10 ms are surely up once it is in, however fast the rest.
    manager.enqueue(Step(model=WRITER, reply="more", delay=0.05), Step(model=CRITIC, reply="DONE here"))
    until = {"stop_phrase": "DONE", "max_seconds": 0.01, "combine": "all"}
    body = discuss(api_client, session, "Go", until=until).json()
    # The time was up after step 1, the phrase came at step 2: both hold only then.
    assert body["stop_reason"] == "all_conditions" and speakers(body) == ["writer", "critic"]
    # max_steps is a bound whatever combine says.
    manager.enqueue(*[decide("writer" if i % 2 == 0 else "critic") for i in range(10)])
    body = discuss(api_client, session, "Go", until={**until, "stop_phrase": "never", "max_steps": 3}).json()
    assert body["stop_reason"] == "max_steps" and len(speakers(body)) == 3


def test_max_credits_stops_before_a_step_it_could_not_pay_and_the_charge_stays_within(
    user, api_client, session, manager
):
    manager.enqueue(*[decide("writer") for _ in range(20)])
    # Every reply costs about its full allowance: 2,000 tokens out.
    full = {"prompt_tokens": 500, "completion_tokens": 2000, "total_tokens": 2500}
    manager.enqueue(*[Step(model=WRITER, usage=full) for _ in range(20)])
    before = CreditAccount.objects.get(user=user).balance
    cap = Decimal("6")
    until = {"max_steps": 50, "max_credits": str(cap)}
    body = discuss(api_client, session, "Go", until=until, allow_repeat=True).json()
    assert body["stop_reason"] == "max_credits", body["stop_reason"]
    assert speakers(body) == ["writer"] * 3  # a fourth step's worst case would pass the cap
    burned = Decimal(body["usage"]["credits_burned"])
    assert cap - Decimal(2) < burned <= cap
    assert CreditAccount.objects.get(user=user).balance == before - burned
    assert not CreditHold.objects.filter(kind="turn").exists()


def test_a_cap_below_one_step_is_refused_before_any_call(api_client, session, manager):
    response = discuss(api_client, session, "Go", until={"max_steps": 3, "max_credits": "0.000001"})
    assert response.status_code == 422 and response.json()["code"] == "discussion_cap_too_low"
    assert manager.requests == [] and not Turn.objects.exists()


def test_without_a_cap_more_steps_than_the_ceiling_is_422_before_any_call(
    api_client, session, manager, settings
):
    settings.DISCUSSION_MAX_STEPS = 5
    response = discuss(api_client, session, "Go", until={"max_steps": 6})
    assert response.status_code == 422 and response.json()["code"] == "discussion_too_long"
    assert response.json()["steps"] == 6 and response.json()["max_steps"] == 5
    assert manager.requests == [] and not Turn.objects.exists() and not CreditHold.objects.exists()
    response = discuss(api_client, session, "Go", mode="roundtable", rounds=3)  # 2 agents × 3
    assert response.status_code == 422
    # With a cap it may.
    manager.enqueue(*[decide("writer" if i % 2 == 0 else "critic") for i in range(6)])
    response = discuss(api_client, session, "Go", until={"max_steps": 6, "max_credits": "500"})
    assert response.status_code == 201 and len(speakers(response.json())) == 6


def test_the_hold_covers_the_worst_case_of_every_step(user, api_client, session, manager):
    balance_set(user, Decimal(0))
    response = discuss(api_client, session, "Go", until={"max_steps": 4})
    assert response.status_code == 402
    worst_four = Decimal(response.json()["required_credits"])
    response = discuss(api_client, session, "Go", until={"max_steps": 2})
    assert Decimal(response.json()["required_credits"]) < worst_four / 2 + Decimal("0.5")


def test_billed_manager_calls_when_the_operator_says_so(api_client, session, manager, settings):
    settings.DISCUSSION_BILL_MANAGER = True
    manager.enqueue(decide("writer"), decide("critic"))
    body = discuss(api_client, session, "Go", until={"max_steps": 2}).json()
    routing = LlmCallEvent.objects.filter(turn_id=body["id"], purpose="routing")
    assert routing.count() == 2 and all(e.billable and e.credits_burned > 0 for e in routing)


@pytest.mark.parametrize(
    ("mode", "discussion", "field"),
    [
        ("manual", {"rounds": 2}, "discussion"),
        ("roundtable", {"until": {"max_steps": 2}}, "discussion.rounds"),
        ("orchestrator", {"rounds": 2}, "discussion.until"),
        ("orchestrator", {"until": {"max_steps": 0}}, "discussion.until.max_steps"),
        ("orchestrator", {"until": {"max_steps": "3"}}, "discussion.until.max_steps"),
        ("orchestrator", {"until": {"stop_agent": "critic"}}, "discussion.until.stop_agent"),
        ("orchestrator", {"until": {"combine": "xor"}}, "discussion.until.combine"),
        ("orchestrator", {"until": {}, "surprise": 1}, "discussion.surprise"),
        ("roundtable", {"rounds": 2, "allow_repeat": "yes"}, "discussion.allow_repeat"),
        ("roundtable", [1], "discussion"),
    ],
)
def test_bad_discussions_are_400_naming_the_field(api_client, session, fake_llm, mode, discussion, field):
    response = api_client.post(
        f"/api/v1/sessions/{session.pk}/turns",
        {"user_input": "go", "mode": mode, "discussion": discussion},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert fake_llm.requests == [] and not Turn.objects.exists()


def test_an_unknown_stop_agent_is_400(api_client, session, fake_llm):
    response = discuss(api_client, session, "Go", until={"stop_phrase": "x", "stop_agent": "ghost"})
    assert response.status_code == 400 and "discussion.until.stop_agent" in response.json()["fields"]


def test_a_step_over_its_budget_stops_the_discussion_with_stop_reason_context(
    room, api_client, session, manager
):
    # The critic's window holds the input, not the writer's long reply: the discussion stops there.
    room.agents.filter(agent_key="critic").update(context_window_tokens=3072)
    manager.enqueue(decide("writer"), decide("critic"))
    manager.enqueue(Step(model=WRITER, reply="word " * 1500))
    body = discuss(api_client, session, "Go", until={"max_steps": 4}).json()
    assert body["status"] == "completed" and body["stop_reason"] == "context"
    assert speakers(body) == ["writer"]
    rejected = TurnContextAudit.objects.get(turn_id=body["id"], rejected=True)
    assert rejected.agent_key == "critic"
    assert [r.model for r in manager.requests].count(CRITIC) == 0


def test_a_failed_step_makes_the_turn_partial_and_the_discussion_goes_on(api_client, session, manager):
    manager.enqueue(decide("writer"), decide("critic"), decide("writer"))
    manager.enqueue(Step(model=CRITIC, status=502))
    body = discuss(api_client, session, "Go", until={"max_steps": 3}).json()
    assert body["status"] == "partial" and body["stop_reason"] == "max_steps"
    assert speakers(body) == ["writer", "writer"]
    assert [s.get("outcome") for s in body["discussion"]["steps"]][1] != "replied"


def test_a_replayed_discussion_answers_the_stored_turn(api_client, session, manager):
    manager.enqueue(decide("writer"), decide("critic"))
    post = lambda **d: api_client.post(  # noqa: E731
        f"/api/v1/sessions/{session.pk}/turns",
        {"user_input": "Go", "mode": "orchestrator", "discussion": {"until": d}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    first = post(max_steps=2)
    again = post(max_steps=2)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert post(max_steps=3).status_code == 422  # the same key, another discussion
    assert Message.objects.filter(turn_id=first.json()["id"]).count() == 3


OPENAI_URL = "/api/openai/v1/chat/completions"


def test_the_openai_endpoint_offers_a_room_as_a_discussion_each_step_a_labelled_part(
    api_client, room, settings
):
    settings.DISCUSSION_MAX_STEPS = 3  # the offline manager never says done
    payload = {"model": f"room-{room.pk}:discussion", "messages": [{"role": "user", "content": "Debate it"}]}
    response = api_client.post(OPENAI_URL, payload, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pantheon"]["mode"] == "orchestrator"
    turn = Turn.objects.get(pk=body["pantheon"]["turn_id"])
    assert turn.stop_reason == "max_steps" and len(turn.responding_agent_keys) == 3
    parts = body["choices"][0]["message"]["content"].split("\n\n")
    names = {"writer": "Writer", "critic": "Critic"}
    assert [p.split(":", 1)[0] for p in parts] == [names[k] for k in turn.responding_agent_keys]
    # What the client asks in metadata, as a JSON string.
    metadata = {"discussion": json.dumps({"until": {"max_steps": 2}})}
    response = api_client.post(OPENAI_URL, {**payload, "metadata": metadata}, format="json")
    assert response.status_code == 200, response.content
    assert len(Turn.objects.get(pk=response.json()["pantheon"]["turn_id"]).responding_agent_keys) == 2
    bad = api_client.post(OPENAI_URL, {**payload, "metadata": {"discussion": "{nope"}}, format="json")
    assert bad.status_code == 400
