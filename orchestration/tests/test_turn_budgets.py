"""Budgets on the turn path (docs/budgets.md): checked in the statement that places the hold, exact
under concurrency, refused with 402 budget_exceeded before any call, settled at the commit."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import Sum

from orchestration.services.summaries import session_summary_generate
from orchestration.testing.fake_server import Step
from orchestration.tests.test_turn_credits_concurrency import post_all, room_with_sessions
from pantheon.celery import app as celery_app
from sessions_app.models import Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import Budget, BudgetUsage, CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.budgets import period_end, period_starts
from usage.services.tokens import api_token_issue
from usage.tests.factories import balance_set

FULL = {"prompt_tokens": 5_000, "completion_tokens": 2048, "total_tokens": 7048}


def worst_case(turn_post, user, session, text: str = "@writer go") -> Decimal:
    """A turn's worst case, from the refusal of a user with no credits (nothing is called)."""
    balance_set(user, Decimal(0))
    refused = turn_post(text, session=session)
    assert refused.status_code == 402, refused.content
    return Decimal(refused.json()["required_credits"])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.integration
def test_twenty_turns_under_a_budget_for_three_worst_cases_exactly_three_succeed(user, fake_llm, settings):
    settings.TURNS_IN_FLIGHT_PER_USER = 50
    fake_llm.set_latency(400)
    sessions = room_with_sessions(user, 10)
    token = api_token_issue(user=user)[1]
    balance_set(user, Decimal(0))
    [probe] = post_all(
        token, [(f"/api/v1/sessions/{sessions[0].pk}/turns", {"user_input": "@writer go"}, {})]
    )
    worst = Decimal(probe.json()["required_credits"])
    balance_set(user, Decimal(100_000))  # the balance is not what stops them
    budget = Budget.objects.create(user=user, period="day", limit_credits=worst * 3)
    fake_llm.enqueue(*[Step(usage=FULL) for _ in range(20)])

    responses = post_all(
        token,
        [
            (f"/api/v1/sessions/{s.pk}/turns", {"user_input": "@writer go"}, {})
            for s in sessions
            for _ in range(2)
        ],
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [402] * 17, statuses
    refusals = [r.json() for r in responses if r.status_code == 402]
    assert {r["code"] for r in refusals} == {"budget_exceeded"}
    assert len(fake_llm.requests) == 3  # a refused turn makes no call
    usage = BudgetUsage.objects.get(budget=budget)
    debited = -CreditLedgerEntry.objects.filter(user=user, kind="turn_debit").aggregate(s=Sum("amount"))["s"]
    assert usage.held == 0 and not CreditHold.objects.exists()
    assert usage.spent == debited <= budget.limit_credits
    assert CreditAccount.objects.get(user=user).held == 0


@pytest.mark.django_db
def test_a_refusal_names_the_budget_its_figures_and_its_reset_and_calls_nothing(
    user, session, turn_post, fake_llm
):
    worst = worst_case(turn_post, user, session)
    balance_set(user, Decimal(1000))
    budget = Budget.objects.create(user=user, period="week", limit_credits=worst - Decimal("0.0001"))

    refused = turn_post("@writer go")

    assert refused.status_code == 402
    body = refused.json()
    assert body["code"] == "budget_exceeded" and body["required_credits"] == str(worst)
    figures = body["budget"]
    assert figures["id"] == budget.pk and figures["scope"] == "user" and figures["period"] == "week"
    assert Decimal(figures["limit_credits"]) == budget.limit_credits
    assert figures["spent_credits"] == "0.0000" and figures["held_credits"] == "0.0000"
    start = period_starts()["week"]
    assert figures["resets_at"] == period_end("week", start).isoformat()
    assert not fake_llm.requests and not Turn.objects.exists()
    assert CreditAccount.objects.get(user=user).balance == Decimal(1000)


@pytest.mark.django_db
def test_settled_spend_counts_the_actual_charge_and_the_hold_leaves(user, session, turn_post, fake_llm):
    worst = worst_case(turn_post, user, session)
    balance_set(user, Decimal(1000))
    budget = Budget.objects.create(user=user, period="month", limit_credits=worst * 2)

    assert turn_post("@writer go").status_code == 201

    usage = BudgetUsage.objects.get(budget=budget)
    burned = LlmCallEvent.objects.aggregate(s=Sum("credits_burned"))["s"]
    assert 0 < burned < worst
    assert usage.spent == burned and usage.held == 0
    # What was not spent is free again: the next turn fits (2 × worst − burned ≥ worst).
    assert turn_post("@writer again").status_code == 201


@pytest.mark.django_db
def test_a_room_budget_binds_that_room_only(user, session, turn_post, fake_llm):
    worst = worst_case(turn_post, user, session)
    balance_set(user, Decimal(1000))
    Budget.objects.create(user=user, room_id=session.room_id, period="day", limit_credits=worst / 2)
    other = SessionFactory(room=room_with_sessions(user, 1)[0].room)

    assert turn_post("@writer go").json()["code"] == "budget_exceeded"
    assert turn_post("@writer go", session=other).status_code == 201


@pytest.mark.django_db
@pytest.mark.room(("writer", "deepseek"), ("critic", "qwen"))
def test_a_model_budget_counts_only_that_models_part(user, session, turn_post, fake_llm):
    writer_only = worst_case(turn_post, user, session, "@writer go")
    both = worst_case(turn_post, user, session, "@writer @critic go")
    balance_set(user, Decimal(1000))
    # Enough for the writer's part of a two-agent turn, less than the whole turn.
    budget = Budget.objects.create(
        user=user, model_alias="deepseek", period="day", limit_credits=both - Decimal("0.0001")
    )

    assert turn_post("@writer @critic go").status_code == 201

    usage = BudgetUsage.objects.get(budget=budget)
    deepseek = LlmCallEvent.objects.filter(model_alias="deepseek").aggregate(s=Sum("credits_burned"))["s"]
    assert usage.spent == deepseek and usage.held == 0
    assert writer_only > 0


@pytest.mark.django_db
def test_a_released_hold_gives_its_budget_share_back(user, session, turn_post, fake_llm):
    worst = worst_case(turn_post, user, session)
    balance_set(user, Decimal(1000))
    budget = Budget.objects.create(user=user, period="day", limit_credits=worst * 3)
    fake_llm.enqueue(Step(status=500))

    turn_post("@writer go")  # every call failed: committed failed, nothing charged

    usage = BudgetUsage.objects.get(budget=budget)
    assert usage.held == 0 and usage.spent == 0


def test_periods_are_calendar_periods_in_the_configured_time_zone(settings):
    settings.BUDGET_TIME_ZONE = "Europe/Paris"
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # a Sunday, the day clocks go forward in Paris
    starts = period_starts(now)
    assert starts["day"].isoformat() == "2026-03-29T00:00:00+01:00"
    assert starts["week"].isoformat() == "2026-03-23T00:00:00+01:00"
    assert starts["month"].isoformat() == "2026-03-01T00:00:00+01:00"
    assert period_end("day", starts["day"]).isoformat() == "2026-03-30T00:00:00+02:00"
    assert period_end("week", starts["week"]).isoformat() == "2026-03-30T00:00:00+02:00"
    assert period_end("month", starts["month"]).isoformat() == "2026-04-01T00:00:00+02:00"
    dec = period_starts(datetime(2026, 12, 31, 23, 30, tzinfo=UTC))["month"]  # already January in Paris
    assert dec.isoformat() == "2027-01-01T00:00:00+01:00"


@pytest.mark.django_db
def test_the_summarys_part_stays_held_with_its_hold_and_settles_with_the_summary(
    user, session, turn_post, fake_llm, settings, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    balance_set(user, Decimal(1000))
    for i in range(1, 8):
        assert turn_post(f"@writer part {i}").status_code == 201
    everything = Budget.objects.create(user=user, period="day", limit_credits=Decimal(500))
    summary_model = Budget.objects.create(
        user=user, period="month", model_alias=settings.SUMMARY_MODEL_ALIAS, limit_credits=Decimal(500)
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = turn_post("@writer part 8")

    assert response.json()["summary_triggered"]
    hold = CreditHold.objects.get(kind="summary")
    assert {s["u"] for s in hold.budget_shares} == set(
        BudgetUsage.objects.filter(budget__in=[everything, summary_model]).values_list("pk", flat=True)
    )
    turn_events = LlmCallEvent.objects.filter(turn_id=response.json()["id"])
    turn_debit = sum(e.credits_burned for e in turn_events)
    for budget in (everything, summary_model):
        usage = BudgetUsage.objects.get(budget=budget)
        assert usage.held == hold.amount
    assert BudgetUsage.objects.get(budget=everything).spent == turn_debit

    for callback in callbacks:
        callback()

    summary_debit = -CreditLedgerEntry.objects.get(user=user, kind="summary_debit").amount
    assert not CreditHold.objects.exists()
    usage = BudgetUsage.objects.get(budget=everything)
    assert (usage.held, usage.spent) == (0, turn_debit + summary_debit)
    assert BudgetUsage.objects.get(budget=summary_model).held == 0


@pytest.mark.django_db
def test_a_summary_placing_its_own_hold_answers_to_the_budgets_and_is_made_unbilled_past_one(
    user, session, turn_post, fake_llm
):
    balance_set(user, Decimal(1000))
    for i in range(3):
        turn_post(f"@writer part {i}")
    budget = Budget.objects.create(user=user, period="day", limit_credits=Decimal("0.0001"))

    summary = session_summary_generate(session_id=session.pk, through_index=3)

    assert summary is not None
    events = LlmCallEvent.objects.filter(purpose__in=["summary", "extraction"])
    assert sum(e.credits_burned for e in events) == 0 and sum(e.credits_unbilled for e in events) > 0
    assert not BudgetUsage.objects.filter(budget=budget, spent__gt=0).exists()
    assert not CreditHold.objects.exists()
