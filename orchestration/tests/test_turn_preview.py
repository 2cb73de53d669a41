"""The cost preview: the turn's own preparation, read-only — no model call, no hold, no write."""

from decimal import Decimal

import pytest

from sessions_app.models import ChatSession, Turn, TurnContextAudit
from usage.models import Budget, BudgetUsage, CreditAccount, CreditHold, LlmCallEvent
from usage.tests.factories import balance_set

pytestmark = pytest.mark.django_db


def preview(api_client, session, text, mode="manual"):
    return api_client.post(
        f"/api/v1/sessions/{session.pk}/turns/preview", {"user_input": text, "mode": mode}, format="json"
    )


def nothing_written(user, session, fake_llm) -> None:
    assert not fake_llm.requests
    assert not Turn.objects.exists() and not TurnContextAudit.objects.exists()
    assert not CreditHold.objects.exists() and not BudgetUsage.objects.exists()
    assert not LlmCallEvent.objects.exists()
    assert CreditAccount.objects.get(user=user).held == 0
    assert ChatSession.objects.get(pk=session.pk).claim_token is None


def test_a_preview_holds_what_the_turn_would_hold_and_calls_and_writes_nothing(
    api_client, user, session, turn_post, fake_llm
):
    balance_set(user, Decimal(0))
    required = Decimal(turn_post("@writer @critic go").json()["required_credits"])
    balance_set(user, Decimal(1000))

    answer = preview(api_client, session, "@writer @critic go")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert Decimal(body["worst_case_credits"]) == required
    assert body["answered_by"] == "in order" and body["refusal"] is None
    assert [(a["agent_key"], a["fits"]) for a in body["agents"]] == [("writer", True), ("critic", True)]
    assert all(a["context_tokens"] > 0 for a in body["agents"])
    assert sum(Decimal(p["credits"]) for p in body["parts"]) == required
    nothing_written(user, session, fake_llm)


def test_an_orchestrated_preview_says_the_manager_decides_among_the_candidates(
    api_client, user, session, fake_llm
):
    balance_set(user, Decimal(1000))

    body = preview(api_client, session, "Who should take this?", mode="orchestrator").json()

    assert body["answered_by"] == "decided by the manager"
    assert [a["agent_key"] for a in body["agents"]] == ["writer", "researcher", "critic"]
    assert [p["kind"] for p in body["parts"]].count("routing") == 1
    nothing_written(user, session, fake_llm)


def test_a_preview_names_the_budget_or_the_balance_that_would_refuse(api_client, user, session, fake_llm):
    balance_set(user, Decimal(1000))
    worst = Decimal(preview(api_client, session, "@writer go").json()["worst_case_credits"])
    budget = Budget.objects.create(user=user, period="day", limit_credits=worst / 2)

    by_budget = preview(api_client, session, "@writer go").json()
    budget_id = budget.pk
    budget.delete()
    balance_set(user, worst / 2)
    by_balance = preview(api_client, session, "@writer go").json()

    assert (
        by_budget["refusal"]["code"] == "budget_exceeded"
        and by_budget["refusal"]["budget"]["id"] == budget_id
    )
    assert by_budget["budgets"][0]["would_refuse"] is True
    assert by_balance["refusal"]["code"] == "insufficient_credits"
    nothing_written(user, session, fake_llm)


@pytest.mark.room(("writer", "deepseek"))
def test_a_preview_reports_a_context_budget_refusal_without_its_audit(api_client, user, session, fake_llm):
    balance_set(user, Decimal(1000))

    body = preview(api_client, session, "@writer " + "word " * 9000).json()

    assert body["refusal"]["code"] == "context_budget_exceeded" and body["refusal"]["agent_key"] == "writer"
    nothing_written(user, session, fake_llm)


def test_a_preview_of_another_users_session_is_404(other_client, session):
    assert preview(other_client, session, "@writer go").status_code == 404
