"""Serializing the turns of one session without holding a transaction or a lock during LLM calls.

A turn *claims* its session with one conditional UPDATE (its own short transaction), runs its LLM
calls with no transaction open, and releases the claim in the transaction that writes the turn. A
claim carries an expiry, so a worker that died mid-turn cannot block the session for ever; the unique
(session, turn_index) constraint is the backstop should an expired claim's owner come back late.
"""

import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestration.errors import TurnConflict
from sessions_app.models import ChatSession


@dataclass(frozen=True)
class SessionClaim:
    session_id: uuid.UUID
    token: uuid.UUID
    last_turn_index: int
    summary_due_through: int = 0


def session_claim(
    *, session_id: uuid.UUID, ttl_seconds: float, wait_seconds: float | None = None
) -> SessionClaim:
    """Take the session's turn claim, waiting up to ``TURN_SEQUENCE_TIMEOUT_SECONDS`` for the turn in
    flight to finish; raise ``TurnConflict`` (409 with Retry-After) past that."""
    wait = settings.TURN_SEQUENCE_TIMEOUT_SECONDS if wait_seconds is None else wait_seconds
    token = uuid.uuid4()
    deadline = time.monotonic() + wait
    pause = 0.01
    while True:
        now = timezone.now()
        taken = (
            ChatSession.objects.filter(pk=session_id)
            .filter(Q(claim_token__isnull=True) | Q(claim_expires_at__lt=now))
            .update(claim_token=token, claim_expires_at=now + timedelta(seconds=ttl_seconds))
        )
        if taken:
            last, due = ChatSession.objects.values_list("last_turn_index", "summary_due_through").get(
                pk=session_id
            )
            return SessionClaim(
                session_id=session_id, token=token, last_turn_index=last, summary_due_through=due or 0
            )
        if time.monotonic() + pause > deadline:
            raise TurnConflict()
        time.sleep(pause * (0.5 + random.random()))  # jitter: waiters don't retry in lockstep
        pause = min(pause * 2, 0.2)


def session_claim_release(*, claim: SessionClaim) -> None:
    """Give the claim back without writing a turn (replay, rejection, error). Harmless if lost."""
    ChatSession.objects.filter(pk=claim.session_id, claim_token=claim.token).update(
        claim_token=None, claim_expires_at=None
    )
