"""Credit holds: a turn reserves its worst case before its first call and settles it in its commit;
a refused turn costs nothing; the balance never goes below zero and always equals the ledger."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from orchestration.llm.offline import OfflineGateway
from orchestration.services.summaries import session_summary_generate
from orchestration.testing.fake_server import Step
from orchestration.turns import turn_execute, turn_request_build
from pantheon.limits import slot_acquire
from rooms.tests.factories import AgentFactory
from sessions_app.models import Message, SessionSummary, Turn, TurnContextAudit
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.holds import HoldRequest, credit_hold_place, credit_holds_sweep
from usage.tests.factories import balance_set

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen")),
]

WRITER, CRITIC = "deepseek/deepseek-chat", "qwen/qwen-2.5-72b-instruct"


def assert_books_balance(user) -> None:
    """Balance ≥ 0, balance = the ledger's sum, nothing held, no hold row."""
    account = CreditAccount.objects.get(user=user)
    ledger = CreditLedgerEntry.objects.filter(user=user).aggregate(s=Sum("amount"))["s"]
    assert account.balance >= 0
    assert account.balance == ledger
    assert account.held == 0 and not CreditHold.objects.filter(user=user).exists()


def required_credits(turn_post, text="@writer go", mode="manual") -> Decimal:
    """The worst case of a turn, as the 402 of a user with no credits reports it."""
    response = turn_post(text, mode=mode)
    assert response.status_code == 402, response.content
    return Decimal(response.json()["required_credits"])


class HoldWatchingGateway(OfflineGateway):
    """The offline provider, noting the user's held credits at the moment of each call."""

    def __init__(self, user):
        self.user, self.held_during_calls = user, []

    def complete(self, request):
        self.held_during_calls.append(CreditAccount.objects.get(user=self.user).held)
        return super().complete(request)


def test_the_hold_is_in_place_during_the_calls_and_settles_to_the_metered_cost(user, session, turn_post):
    balance_set(user, Decimal(0))
    worst = required_credits(turn_post, "@writer @critic go")
    balance_set(user, Decimal(100))
    gateway = HoldWatchingGateway(user)

    outcome = turn_execute(
        request=turn_request_build(
            user=user, session_id=session.pk, user_input="@writer @critic go", mode="manual"
        ),
        gateway=gateway,
    )

    assert gateway.held_during_calls == [worst, worst]
    charged = sum(e.credits_burned for e in outcome.events)
    assert 0 < charged <= worst
    assert CreditAccount.objects.get(user=user).balance == Decimal(100) - charged
    assert outcome.usage.credits_burned == charged
    assert_books_balance(user)


def test_a_turn_the_available_credits_cannot_cover_is_402_and_makes_no_call(user, fake_llm, turn_post):
    balance_set(user, Decimal("0.05"))
    response = turn_post("@writer @critic go")

    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert Decimal(body["available"]) == Decimal("0.05") < Decimal(body["required_credits"])
    assert fake_llm.requests == []
    assert not Turn.objects.exists() and not LlmCallEvent.objects.exists()
    assert_books_balance(user)


def test_available_is_the_balance_minus_what_other_turns_hold(user, api_client, fake_llm, turn_post):
    balance_set(user, Decimal(0))
    worst = required_credits(turn_post)
    balance_set(user, worst * 2)
    held = worst + Decimal("0.0001")  # another turn in flight leaves a ten-thousandth too little
    credit_hold_place(
        hold=HoldRequest(user_id=user.pk, kind="turn", amount=held, expires_at=timezone.now() + timedelta(60))
    )

    response = turn_post("@writer go")

    assert response.status_code == 402
    assert Decimal(response.json()["available"]) == worst - Decimal("0.0001")
    assert fake_llm.requests == []
    me = api_client.get("/api/v1/auth/me").json()
    assert Decimal(me["credit_balance"]) == worst * 2
    assert Decimal(me["credits_held"]) == held
    assert Decimal(me["credits_available"]) == worst - Decimal("0.0001")


def test_an_orchestrator_turn_at_zero_credits_makes_no_routing_call(user, fake_llm, turn_post):
    balance_set(user, Decimal(0))
    response = turn_post("Who should answer?", mode="orchestrator")
    assert response.status_code == 402
    assert fake_llm.requests == [] and not LlmCallEvent.objects.exists()


def test_a_failed_turn_releases_its_hold_and_debits_nothing(user, fake_llm, turn_post):
    fake_llm.enqueue(Step(status=503), Step(status=503))
    balance = CreditAccount.objects.get(user=user).balance
    response = turn_post("@writer @critic go")
    assert response.status_code == 502
    assert CreditAccount.objects.get(user=user).balance == balance
    assert_books_balance(user)


def test_a_provider_reporting_more_than_the_hold_is_debited_only_what_is_available(user, fake_llm, turn_post):
    balance_set(user, Decimal(0))
    worst = required_credits(turn_post)
    balance_set(user, worst)
    fake_llm.enqueue(
        Step(usage={"prompt_tokens": 900_000, "completion_tokens": 2048, "total_tokens": 902_048})
    )

    response = turn_post("@writer go")

    assert response.status_code == 201
    event = LlmCallEvent.objects.get(turn_id=response.json()["id"])
    assert event.credits_burned == worst and event.credits_unbilled > 0
    assert event.credits_burned + event.credits_unbilled == (event.cost_usd * 1000).quantize(
        Decimal("0.0001")
    )
    assert CreditAccount.objects.get(user=user).balance == 0
    assert_books_balance(user)


def test_provider_figures_beyond_the_columns_are_clamped_and_the_turn_commits(user, fake_llm, turn_post):
    fake_llm.enqueue(
        Step(usage={"prompt_tokens": 3_000_000_000, "completion_tokens": 12, "total_tokens": 3_000_000_012})
    )
    response = turn_post("@writer go")
    assert response.status_code == 201, response.content
    event = LlmCallEvent.objects.get(turn_id=response.json()["id"])
    assert event.figures_clamped and event.input_tokens == 2**31 - 1
    assert_books_balance(user)


def test_a_nul_in_a_reply_is_removed_and_the_other_agent_keeps_its_reply(user, fake_llm, turn_post):
    fake_llm.enqueue(Step(model=WRITER, reply="Hello\x00 world\x00"), Step(model=CRITIC, reply="Fine."))
    response = turn_post("@writer @critic go")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert [m["content"] for m in body["messages"][1:]] == ["Hello world", "Fine."]


def test_a_reply_of_nothing_but_nul_counts_as_a_failed_call(user, fake_llm, turn_post):
    fake_llm.enqueue(Step(model=WRITER, reply="\x00\x00"), Step(model=CRITIC, reply="Fine."))
    response = turn_post("@writer @critic go")
    assert response.json()["status"] == "partial"
    assert response.json()["agent_errors"] == [{"agent_key": "writer", "code": "provider_empty_response"}]


def test_a_stray_turn_row_at_the_next_index_is_found_before_any_call(user, session, fake_llm, turn_post):
    Turn.objects.create(session=session, turn_index=1, mode="manual", user_input="stray", status="completed")
    response = turn_post("@writer go")
    assert response.status_code == 201, response.content
    assert response.json()["turn_index"] == 2
    assert len(fake_llm.requests) == 1


def test_more_turns_in_flight_than_the_cap_is_429_at_once(user, fake_llm, settings, turn_post):
    settings.TURNS_IN_FLIGHT_PER_USER = 1
    assert slot_acquire(f"turns-in-flight:{user.pk}", limit=1, ttl_seconds=60)  # a turn of the user in flight
    response = turn_post("@writer go")
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1
    assert fake_llm.requests == []


def test_a_long_orchestrator_input_is_refused_before_the_routing_call(user, fake_llm, turn_post):
    response = turn_post("word " * 10_000, mode="orchestrator")
    assert response.status_code == 422 and response.json()["code"] == "context_budget_exceeded"
    assert fake_llm.requests == [] and not LlmCallEvent.objects.exists()


def test_the_manager_is_offered_only_the_agents_whose_budget_fits(user, room, fake_llm, turn_post):
    AgentFactory(
        room=room,
        agent_key="reader",
        name="Reader",
        model_alias="gpt-4o-mini",
        position=2,
        context_window_tokens=120_000,
    )
    fake_llm.enqueue(Step(reply='{"selected_agent_keys": ["reader"]}'))
    response = turn_post("word " * 10_000, mode="orchestrator")
    assert response.status_code == 201, response.content
    routing = fake_llm.requests[0].messages[0]["content"]
    assert "AGENT_KEYS: reader" in routing
    assert response.json()["responding_agent_keys"] == ["reader"]


def test_an_agent_with_its_own_window_takes_a_long_input(user, room, fake_llm, turn_post):
    AgentFactory(
        room=room,
        agent_key="reader",
        name="Reader",
        model_alias="gpt-4o-mini",
        position=2,
        context_window_tokens=120_000,
    )
    response = turn_post("@reader " + "lorem ipsum " * 5_000)
    assert response.status_code == 201, response.content
    audit = TurnContextAudit.objects.get(turn_id=response.json()["id"])
    assert (audit.context_window, audit.budget_tokens) == (120_000, 120_000 - 2048)
    assert audit.tokens_after > 8192


def test_four_long_inputs_make_at_most_one_summary(
    user, session, fake_llm, django_capture_on_commit_callbacks, turn_post
):
    """Anchor + input alone near 78 % of the budget: a summary could not shrink them."""
    text = "@writer " + "the lighthouse keeper writes " * 480  # ~2,400 tokens
    triggered = []
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):  # summaries are made as in production
            triggered.append(turn_post(text).json()["summary_triggered"])
    assert sum(triggered) <= 1, triggered
    assert SessionSummary.objects.filter(session=session).count() <= 1


def test_a_summary_never_overdraws_the_balance(user, session, fake_llm, turn_post):
    for i in range(3):
        turn_post(f"@writer part {i}")
    balance_set(user, Decimal("0.01"))
    summary = session_summary_generate(session_id=session.pk, through_index=3)
    assert summary is not None
    # Without a hold of its own (the balance cannot cover one), nothing is charged: the summary is
    # made, its cost recorded unbilled.
    events = LlmCallEvent.objects.filter(purpose__in=["summary", "extraction"])
    assert sum(e.credits_burned for e in events) == 0
    assert sum(e.credits_unbilled for e in events) > 0
    assert all(e.provider_overshoot for e in events)
    assert CreditAccount.objects.get(user=user).balance == Decimal("0.01")
    assert_books_balance(user)


def test_the_summary_share_moves_into_a_hold_the_summary_settles(
    user, session, fake_llm, django_capture_on_commit_callbacks, turn_post
):
    for i in range(1, 8):
        turn_post(f"@writer part {i}")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = turn_post("@writer part 8")
    assert response.json()["summary_triggered"]
    hold = CreditHold.objects.get()
    assert (hold.kind, hold.covers_through_turn_index) == ("summary", 8) and hold.amount > 0
    assert CreditAccount.objects.get(user=user).held == hold.amount

    for callback in callbacks:
        callback()

    assert SessionSummary.objects.filter(session=session, covers_through_turn_index=8).exists()
    assert CreditLedgerEntry.objects.filter(user=user, kind="summary_debit").exists()
    assert_books_balance(user)


def test_the_sweep_frees_an_abandoned_turn_hold_and_reports_it(user, session):
    hold = credit_hold_place(
        hold=HoldRequest(
            user_id=user.pk,
            kind="turn",
            amount=Decimal("3.5"),
            cost_usd=Decimal("0.0035"),
            model_alias="deepseek",
            session_id=session.pk,
            room_id=session.room_id,
            turn_id=session.pk,
            expires_at=timezone.now() - timedelta(seconds=1),
        )
    )
    live = credit_hold_place(
        hold=HoldRequest(
            user_id=user.pk, kind="turn", amount=Decimal(1), expires_at=timezone.now() + timedelta(60)
        )
    )

    swept = credit_holds_sweep()

    assert (swept.turn_holds, swept.summary_holds, swept.credits_released) == (1, 0, Decimal("3.5"))
    assert list(CreditHold.objects.values_list("pk", flat=True)) == [live.pk]
    assert CreditAccount.objects.get(user=user).held == Decimal(1)
    event = LlmCallEvent.objects.get()
    assert event.abandoned and not event.billable and event.credits_burned == 0
    assert (event.cost_usd, event.turn_id, event.model_alias) == (Decimal("0.0035"), hold.turn_id, "deepseek")


def test_a_replayed_turn_makes_no_call_and_holds_nothing(user, fake_llm, turn_post):
    first = turn_post("@writer go", HTTP_IDEMPOTENCY_KEY="k1")
    fake_llm.reset()
    balance_set(user, Decimal(0))  # a replay needs no credit
    again = turn_post("@writer go", HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["usage"] == first.json()["usage"]
    assert fake_llm.requests == []
    assert Message.objects.count() == 2


def test_a_provider_reporting_absurd_usage_is_charged_the_hold_not_the_balance(
    user, session, fake_llm, turn_post
):
    """10¹⁸ tokens reported for one reply: the turn is charged what it held, never the balance; the
    rest is recorded unbilled and flagged for the operator."""
    fake_llm.enqueue(Step(reply="Fine.", usage={"prompt_tokens": 10**18, "completion_tokens": 10**18}))
    before = CreditAccount.objects.get(user=user).balance
    response = turn_post("@writer go")
    assert response.status_code == 201, response.json()
    event = LlmCallEvent.objects.get(turn_id=response.json()["id"])
    debit = CreditLedgerEntry.objects.get(kind="turn_debit", turn_id=event.turn_id)
    assert event.provider_overshoot and event.figures_clamped
    assert event.credits_unbilled > 1000 > event.credits_burned > 0
    assert -debit.amount == event.credits_burned
    assert CreditAccount.objects.get(user=user).balance == before - event.credits_burned > before - 10
    assert_books_balance(user)


def test_a_summary_of_a_reply_larger_than_its_window_stays_within_it(
    user, session, fake_llm, turn_post, settings
):
    """A provider that ignored ``max_tokens`` sent a huge reply: the summary of that turn sends at
    most its model's window, the size its hold was made for."""
    from orchestration.llm.tokens import count_messages_tokens
    from orchestration.services.summaries import _summary_budget
    from usage.selectors import priced_models_get

    fake_llm.enqueue(Step(reply="lighthouse " * 150_000))  # ~150,000 tokens, far beyond any window
    assert turn_post("@writer go").status_code == 201
    fake_llm.reset()
    session_summary_generate(session_id=session.pk, through_index=1)
    stage_one = fake_llm.requests[0]
    alias = settings.SUMMARY_MODEL_ALIAS
    budget = _summary_budget(priced_models_get(aliases={alias})[alias])
    assert count_messages_tokens(m["content"] for m in stage_one.messages) <= budget.tokens
    assert "cut to fit the window" in stage_one.messages[-1]["content"]
