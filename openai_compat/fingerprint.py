"""Fingerprints of conversations, so a chat client that resends its whole history finds its session.

A transcript is the list of ``(role, content)`` messages a client holds: for each non-failed turn,
the user's input and the turn's assistant reply exactly as the endpoint returned it (the joined
``Name: reply`` paragraphs). Its fingerprint is a hash chain over those messages, so the
fingerprint through turn *n* is computed from the one through turn *n − 1* plus two messages, and
each session and turn stores its own (``sessions_app`` ``transcript_fingerprint``).

What a client resends is normalized the same way before it is chained: system (and developer)
messages, tool messages and empty assistant messages are left out, and so is a user message that
got no answer (one followed directly by another user message: a failed or refused turn, which never
enters a session's transcript either). Content is compared with its line endings unified, NUL
characters removed and outer whitespace stripped, as replies are stored.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

EMPTY = ""  # the fingerprint of an empty transcript

USER, ASSISTANT = "user", "assistant"


@dataclass(frozen=True)
class TranscriptMessage:
    role: str
    content: str


def content_normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\x00", "").strip()


def fingerprint_extend(fingerprint: str, message: TranscriptMessage) -> str:
    """The fingerprint of a transcript with one more message."""
    link = json.dumps([fingerprint, message.role, content_normalize(message.content)])
    return hashlib.sha256(link.encode()).hexdigest()


def fingerprint_of(messages: Iterable[TranscriptMessage], start: str = EMPTY) -> str:
    fingerprint = start
    for message in messages:
        fingerprint = fingerprint_extend(fingerprint, message)
    return fingerprint


def turn_fingerprint(previous: str, *, user_input: str, reply: str) -> str:
    """The fingerprint through a turn, from the one before it."""
    return fingerprint_of(
        (TranscriptMessage(USER, user_input), TranscriptMessage(ASSISTANT, reply)), start=previous
    )


def transcript_normalize(messages: Iterable[TranscriptMessage]) -> list[TranscriptMessage]:
    """A client's messages as they take part in a fingerprint (see the module's docstring)."""
    kept = [
        TranscriptMessage(m.role, content_normalize(m.content))
        for m in messages
        if m.role in (USER, ASSISTANT) and content_normalize(m.content)
    ]
    return [
        message
        for position, message in enumerate(kept)
        if not (message.role == USER and position + 1 < len(kept) and kept[position + 1].role == USER)
    ]
