"""A failure after the LLM calls but before commit leaves nothing half-written."""

import pytest
from django.db import DatabaseError

from orchestration.turns import store
from sessions_app.models import ChatSession, Message, Turn, TurnContextAudit
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent

pytestmark = pytest.mark.django_db


def _commit_fails(monkeypatch):
    """Make the commit's one statement fail. Returns what undoes it."""
    real = store.turn_write

    def failing(**kwargs):
        raise DatabaseError("could not extend file: No space left on device")

    monkeypatch.setattr(store, "turn_write", failing)
    return lambda: monkeypatch.setattr(store, "turn_write", real)


def test_failure_before_commit_leaves_no_turn_and_orphans_each_call(
    session, user, fake_llm, monkeypatch, turn_post
):
    undo = _commit_fails(monkeypatch)
    balance = CreditAccount.objects.get(user=user).balance

    response = turn_post("@writer @critic go")

    assert response.status_code == 503
    assert response.json()["code"] == "turn_write_failed"
    assert Turn.objects.count() == 0
    assert Message.objects.count() == 0
    assert TurnContextAudit.objects.count() == 0
    assert CreditLedgerEntry.objects.filter(kind="turn_debit").count() == 0
    assert CreditAccount.objects.get(user=user).balance == balance
    assert CreditAccount.objects.get(user=user).held == 0 and not CreditHold.objects.exists()
    orphans = LlmCallEvent.objects.all()
    assert orphans.count() == len(fake_llm.requests) == 2
    assert all(e.orphaned and e.turn_id is None and not e.billable and e.credits_burned == 0 for e in orphans)
    served = {(gid, g["model"]) for gid, g in fake_llm.state.generations.items()}  # by the provider
    assert len({e.provider_generation_id for e in orphans}) == 2
    assert {(e.provider_generation_id, e.provider_model) for e in orphans} <= served
    refreshed = ChatSession.objects.get(pk=session.pk)
    assert refreshed.claim_token is None and refreshed.last_turn_index == 0

    undo()
    retry = turn_post("@writer again")
    assert retry.status_code == 201 and retry.json()["turn_index"] == 1
