"""Serializing the turns of one session without holding a transaction or a lock during LLM calls.

A turn *claims* its session with one conditional UPDATE (its own short transaction) that writes the
turn's id as the claim token, runs its LLM calls with no transaction open, and releases the claim in
the transaction that writes the turn. A claim carries an expiry, so a worker that died mid-turn
cannot block the session for ever; the unique (session, turn_index) constraint is the backstop should
an expired claim's owner come back late.
"""

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from orchestration.errors import TurnConflict
from sessions_app.models import ChatSession

T = TypeVar("T")


@dataclass(frozen=True)
class SessionClaim:
    session_id: uuid.UUID
    token: uuid.UUID
    # The highest index taken in the session: its counter, or a stray turn row beyond it.
    last_turn_index: int
    expires_at: datetime
    summary_due_through: int = 0


def claim_wait(attempt: Callable[[], T | None]) -> T:
    """Call ``attempt`` (one try at the claim: a result, or None while the session is busy) until it
    succeeds, for up to ``TURN_CLAIM_WAIT_SECONDS``; raise ``TurnConflict`` (409 with Retry-After)
    past that. Waiting is polling — no lock, no transaction — with jitter, so waiters don't retry in
    lockstep."""
    deadline = time.monotonic() + settings.TURN_CLAIM_WAIT_SECONDS
    pause = 0.01
    while True:
        result = attempt()
        if result is not None:
            return result
        if time.monotonic() + pause > deadline:
            raise TurnConflict()
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.2)


def session_claim(*, session_id: uuid.UUID, token: uuid.UUID, ttl_seconds: float) -> SessionClaim:
    """Take the session's turn claim (one conditional UPDATE), waiting for the turn in flight."""

    def attempt() -> SessionClaim | None:
        now = timezone.now()
        expires_at = now + timedelta(seconds=ttl_seconds)
        taken = (
            ChatSession.objects.filter(pk=session_id)
            .filter(Q(claim_token__isnull=True) | Q(claim_expires_at__lt=now))
            .update(claim_token=token, claim_expires_at=expires_at)
        )
        return _claim_read(session_id=session_id, token=token, expires_at=expires_at) if taken else None

    return claim_wait(attempt)


def _claim_read(*, session_id: uuid.UUID, token: uuid.UUID, expires_at: datetime) -> SessionClaim:
    """The claimed session's counters. A turn row already at or past the counter (written by an
    expired claim's late owner, or by hand) is found here, before any call: the turn continues from
    the highest stored index instead of failing at its write after paying for its calls."""
    row = (
        ChatSession.objects.filter(pk=session_id)
        .annotate(stored_max=Max("turns__turn_index"))
        .values_list("last_turn_index", "summary_due_through", "stored_max")
        .get()
    )
    last, due, stored_max = row
    return SessionClaim(
        session_id=session_id,
        token=token,
        last_turn_index=max(last, stored_max or 0),
        expires_at=expires_at,
        summary_due_through=due or 0,
    )


def session_claim_extend(*, claim: SessionClaim, ttl_seconds: float) -> SessionClaim | None:
    """Push the claim's expiry (a long streamed turn); None if the claim was lost meanwhile."""
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds)
    kept = ChatSession.objects.filter(pk=claim.session_id, claim_token=claim.token).update(
        claim_expires_at=expires_at
    )
    if not kept:
        return None
    return replace(claim, expires_at=expires_at)


def session_claim_release(*, claim: SessionClaim) -> None:
    """Give the claim back without writing a turn (replay, refusal, failure). Harmless if lost."""
    ChatSession.objects.filter(pk=claim.session_id, claim_token=claim.token).update(
        claim_token=None, claim_expires_at=None
    )
