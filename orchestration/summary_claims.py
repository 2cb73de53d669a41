"""One summary at a time per session, whatever the worker pool (docs/transactions.md, "Summaries").

A summary claims its session (``summary_claim_take``: one conditional UPDATE, so two workers can never
both hold it) before it reads the summary it builds on, and checks at its write, with the session's
row locked, that the claim is still its own and that no summary was written meanwhile
(``summary_claim_confirm``). So each summary covers the turns after the one before it, and every turn
is summarised once. The claim expires by itself when its worker dies (the worst case of its two
calls plus a margin); the next summary of the session takes it over.
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestration.errors import SummaryBusy
from orchestration.llm.registry import gateway_call_deadline_seconds
from sessions_app.models import ChatSession, SessionSummary
from usage.models import CreditHold

# A summary makes two calls (the summary, then the extraction).
SUMMARY_CALLS = 2


def summary_claim_seconds() -> float:
    return gateway_call_deadline_seconds() * SUMMARY_CALLS + settings.TURN_CLAIM_MARGIN_SECONDS


def summary_claim_take(*, session_id: uuid.UUID | str, hold: CreditHold | None) -> uuid.UUID:
    """Claim the session's summary, or raise ``SummaryBusy`` while another summary holds it.

    The summary's hold (if any) is marked as having started its calls, and expires with the claim: if
    the worker dies, the holds sweep reports its calls as abandoned once the claim is over."""
    token, now = uuid.uuid4(), timezone.now()
    expires_at = now + timedelta(seconds=summary_claim_seconds())
    taken = (
        ChatSession.objects.filter(pk=session_id)
        .filter(Q(summary_claim_expires_at__isnull=True) | Q(summary_claim_expires_at__lt=now))
        .update(summary_claim_token=token, summary_claim_expires_at=expires_at)
    )
    if not taken:
        raise SummaryBusy(session_id=str(session_id))
    if hold is not None:
        CreditHold.objects.filter(pk=hold.pk).update(calls_started_at=now, expires_at=expires_at)
        hold.calls_started_at, hold.expires_at = now, expires_at
    return token


def summary_claim_confirm(
    *, session_id: uuid.UUID | str, token: uuid.UUID, previous: SessionSummary | None
) -> bool:
    """Inside the write's transaction: lock the session's row (`FOR NO KEY UPDATE`, the lock order of
    docs/transactions.md) and say whether the claim is still ours
    and the latest summary is still ``previous`` (the one this summary was built on)."""
    mine = (
        ChatSession.objects.select_for_update(no_key=True)
        .filter(pk=session_id, summary_claim_token=token)
        .values_list("pk", flat=True)
        .first()
    )
    if mine is None:
        return False
    latest = (
        SessionSummary.objects.filter(session_id=session_id)
        .order_by("-covers_through_turn_index")
        .values_list("pk", flat=True)
        .first()
    )
    return latest == (previous.pk if previous else None)


def summary_claim_release(*, session_id: uuid.UUID | str, token: uuid.UUID) -> None:
    """Give the claim back (harmless if it was taken over after expiring)."""
    ChatSession.objects.filter(pk=session_id, summary_claim_token=token).update(
        summary_claim_token=None, summary_claim_expires_at=None
    )


def summary_claim_expiry(*, session_id: uuid.UUID | str) -> datetime | None:
    return (
        ChatSession.objects.filter(pk=session_id).values_list("summary_claim_expires_at", flat=True).first()
    )
