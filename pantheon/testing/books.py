"""The "nothing lost" check of the fault suite: after any fault, the books still balance."""

from decimal import Decimal

from django.db.models import Sum

from sessions_app.models import ChatSession, Message, Turn
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent


def assert_nothing_lost() -> None:
    """Every committed turn has its messages and its usage; every credit account equals its ledger
    and holds nothing; no session is left claimed; what was billed is what was debited."""
    for turn in Turn.objects.all():
        answered = len(turn.responding_agent_keys)
        assert Message.objects.filter(turn=turn, role="user").count() == 1, turn.pk
        assert Message.objects.filter(turn=turn, role="assistant").count() == answered, turn.pk
        replies = LlmCallEvent.objects.filter(turn_id=turn.pk, purpose="agent_reply", status="succeeded")
        assert replies.count() == answered, turn.pk
    for account in CreditAccount.objects.all():
        ledger = CreditLedgerEntry.objects.filter(user_id=account.user_id).aggregate(s=Sum("amount"))["s"]
        assert account.balance == (ledger or Decimal(0)), account.user_id
        assert account.balance >= 0 and account.held == 0, account.user_id
    assert not CreditHold.objects.exists()
    assert not ChatSession.objects.filter(claim_token__isnull=False).exists()
    billed = LlmCallEvent.objects.filter(billable=True).aggregate(s=Sum("credits_burned"))["s"] or Decimal(0)
    debited = -(
        CreditLedgerEntry.objects.exclude(kind__in=["grant", "adjustment"]).aggregate(s=Sum("amount"))["s"]
        or Decimal(0)
    )
    assert billed == debited
