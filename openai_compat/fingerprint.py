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
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

EMPTY = ""  # the fingerprint of an empty transcript

USER, ASSISTANT = "user", "assistant"


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    role: str
    content: str


def content_normalize(text: str) -> str:
    if "\r" in text or "\x00" in text:
        text = text.replace("\r\n", "\n").replace("\x00", "")
    return text.strip()


def fingerprint_extend(fingerprint: str, message: TranscriptMessage) -> str:
    """The fingerprint of a transcript with one more message."""
    return fingerprint_of((message,), start=fingerprint)


def fingerprint_of(messages: Iterable[TranscriptMessage], start: str = EMPTY) -> str:
    """The chain over ``messages`` from ``start``: each link the SHA-256 of
    ``json.dumps([fingerprint, role, content])``, the JSON written directly (a history resent whole
    is up to a million links, and ``json.dumps`` builds an encoder for each)."""
    fingerprint, sha256, as_json = start, hashlib.sha256, encode_basestring_ascii
    for message in messages:
        content = as_json(content_normalize(message.content))
        link = f"[{as_json(fingerprint)}, {as_json(message.role)}, {content}]"
        fingerprint = sha256(link.encode()).hexdigest()
    return fingerprint


def turn_fingerprint(previous: str, *, user_input: str, reply: str) -> str:
    """The fingerprint through a turn, from the one before it."""
    return fingerprint_of(
        (TranscriptMessage(USER, user_input), TranscriptMessage(ASSISTANT, reply)), start=previous
    )


def transcript_normalize(messages: Iterable[TranscriptMessage]) -> list[TranscriptMessage]:
    """A client's messages as they take part in a fingerprint (see the module's docstring)."""
    kept: list[TranscriptMessage] = []
    for m in messages:
        if m.role != USER and m.role != ASSISTANT:
            continue
        content = content_normalize(m.content)
        if not content:
            continue
        if m.role == USER and kept and kept[-1].role == USER:
            kept.pop()  # the user message before got no answer
        kept.append(m if content is m.content else TranscriptMessage(m.role, content))
    return kept
