"""A turn as asked: ``turn_request_build`` validates the input once, whoever asks (the API, the
OpenAI-compatible endpoint, a command), into a frozen ``TurnRequest``."""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from orchestration.discussions import Discussion, discussion_build
from orchestration.errors import InvalidInput
from orchestration.turns.store import SessionClaim
from sessions_app.models import Turn

IDEMPOTENCY_KEY_MAX_LENGTH = 200

# ``on_event(name, data)``: the turn's progress as it happens (docs/streaming.md lists the events).
TurnEventSink = Callable[[str, dict], None]


@dataclass(frozen=True)
class TurnRequest:
    """A turn as asked, validated: ``turn_request_build`` is the only way to make one."""

    user: object
    session_id: uuid.UUID | str
    user_input: str
    mode: str
    idempotency_key: str | None
    fingerprint: str
    # Called with the session claim once the turn holds it (after the replay check, before the
    # budget and the hold): a caller's own check of the session, e.g. the OpenAI endpoint's
    # "the conversation's head has not moved" (openai_compat.services). What it raises, the turn
    # raises, with the claim and the in-flight slot given back.
    after_claim: Callable[[SessionClaim], None] | None = field(default=None, compare=False)
    # The OpenAI-compatible endpoint's key the turn came through: its budgets apply too.
    api_key_id: int | None = None
    # A discussion (docs/discussions.md); None: the agents answer once.
    discussion: Discussion | None = None


def turn_request_build(
    *,
    user,
    session_id: uuid.UUID | str,
    user_input: str,
    mode: str,
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
    discussion: dict | None = None,
) -> TurnRequest:
    """Validate a turn's input. Raises ``InvalidInput`` (400) with the failing field."""
    text = (user_input or "").strip() if isinstance(user_input, str) else ""
    if not text:
        raise InvalidInput("user_input must not be empty.", extra={"fields": {"user_input": ["blank"]}})
    if len(text) > settings.TURN_USER_INPUT_MAX_CHARS:
        raise InvalidInput(
            f"user_input is longer than {settings.TURN_USER_INPUT_MAX_CHARS} characters.",
            extra={"fields": {"user_input": ["max_length"]}},
        )
    if "\x00" in text:
        raise InvalidInput.for_field("user_input", "NUL characters are not allowed.")
    if mode not in Turn.Mode.values:
        raise InvalidInput(
            f"Unknown mode {mode!r}; use one of: {', '.join(Turn.Mode.values)}.",
            extra={"fields": {"mode": ["invalid"]}},
        )
    key = idempotency_key or None
    if key is not None and (len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable()):
        raise InvalidInput(
            f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters.",
            extra={"fields": {"Idempotency-Key": ["invalid"]}},
        )
    asked = discussion_build(discussion, mode=mode)
    # A plain turn's fingerprint is what it always was; a discussion's covers how it was asked.
    shape = [mode, text] if asked is None else [mode, text, asked.as_dict()]
    fingerprint = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
    return TurnRequest(
        user=user,
        session_id=session_id,
        user_input=text,
        mode=mode,
        idempotency_key=key,
        fingerprint=fingerprint,
        api_key_id=api_key_id,
        discussion=asked,
    )
