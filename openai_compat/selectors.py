"""Reads of the OpenAI-compatible endpoint: rooms as models, and the session a resent history
belongs to. Always scoped to the requesting user."""

import re
from dataclasses import dataclass

from django.db.models import QuerySet

from openai_compat.errors import ModelNotFound
from openai_compat.models import ApiKey, api_key_hash
from pantheon.errors import NotFound
from rooms.models import Room
from rooms.selectors import room_get, room_list
from sessions_app.models import ChatSession, Turn

DEFAULT_MODE = ""  # ``room-<id>``: manual when the message @tags an agent, else orchestrator
DISCUSSION_MODE = "discussion"  # ``room-<id>:discussion``: the agents discuss (docs/discussions.md)
MODEL_SUFFIXES = (DEFAULT_MODE, *Turn.Mode.values, DISCUSSION_MODE)
_MODEL_ID = re.compile(r"room-(?P<room>[0-9a-fA-F-]{32,36})(?::(?P<mode>[a-z]+))?")


@dataclass(frozen=True)
class RoomModel:
    """A room served as a model, in one of its modes (``DEFAULT_MODE``: chosen per message)."""

    room: Room
    mode: str

    @property
    def id(self) -> str:
        return f"room-{self.room.pk}" + (f":{self.mode}" if self.mode else "")


def room_models_list(*, user) -> list[RoomModel]:
    """Every live room of the user, newest first, in each of its modes (its agents prefetched)."""
    return [RoomModel(room=room, mode=mode) for room in room_list(user=user) for mode in MODEL_SUFFIXES]


def room_model_get(*, user, model_id: str) -> RoomModel:
    """The room and mode a model id names, or ``ModelNotFound`` (missing, deleted, another user's
    room, an unknown mode or not an id of ours: all alike). Its agents are not loaded: read them
    with ``rooms.selectors.agent_list`` where they are needed."""
    match = _MODEL_ID.fullmatch(model_id or "")
    mode = (match and match["mode"]) or DEFAULT_MODE
    if match is None or mode not in MODEL_SUFFIXES:
        raise ModelNotFound(model_id)
    try:
        room = room_get(user=user, room_id=match["room"])
    except NotFound as exc:
        raise ModelNotFound(model_id) from exc
    return RoomModel(room=room, mode=mode)


def _live_sessions(room: Room) -> QuerySet[ChatSession]:
    return ChatSession.objects.live().filter(room=room)


def _live_turns(room: Room) -> QuerySet[Turn]:
    """The turns of the room's live sessions, each with its session."""
    return Turn.objects.filter(session__room=room, session__deleted_at__isnull=True).select_related("session")


def conversation_session_find(*, room: Room, fingerprint: str) -> ChatSession | None:
    """The room's session whose transcript so far has this fingerprint (the most recently updated,
    if several): the conversation continues there."""
    return _live_sessions(room).filter(transcript_fingerprint=fingerprint).order_by("-updated_at").first()


def conversation_turn_find(*, room: Room, fingerprint: str) -> Turn | None:
    """A turn of the room whose transcript through it has this fingerprint (in the most recently
    updated session, if several): where a history that stops at an earlier turn forks."""
    return (
        _live_turns(room)
        .filter(transcript_fingerprint=fingerprint)
        .order_by("-session__updated_at", "-turn_index")
        .first()
    )


def transcript_head_index(*, session: ChatSession, fingerprint: str) -> int:
    """The index of the session's turn whose transcript through it has this fingerprint (0: none,
    the fingerprint is of the history the session started from)."""
    turns = Turn.objects.filter(session=session, transcript_fingerprint=fingerprint).order_by("-turn_index")
    return turns.values_list("turn_index", flat=True).first() or 0


def kept_reply_candidates(*, room: Room, user_input: str, kept: str) -> QuerySet[Turn]:
    """The room's non-failed turns asked ``user_input`` whose reply starts with, and is longer than,
    ``kept`` (most recent first): where a client that kept part of a reply may have it from."""
    return (
        _live_turns(room)
        .filter(user_input=user_input, assistant_output__startswith=kept)
        .exclude(assistant_output=kept)
        .exclude(status=Turn.Status.FAILED)
        .exclude(transcript_fingerprint="")
        .order_by("-created_at")[:20]
    )


def pending_transcript_turns(*, session: ChatSession) -> QuerySet[Turn]:
    """The session's committed, non-failed turns whose fingerprint is not recorded yet, in order."""
    return (
        Turn.objects.filter(session=session, transcript_fingerprint="")
        .exclude(status=Turn.Status.FAILED)
        .order_by("turn_index")
        .only("id", "turn_index", "user_input", "assistant_output")
    )


def api_key_get(*, key: str) -> ApiKey | None:
    """The live key with this secret, with its user; None if unknown or revoked."""
    return (
        ApiKey.objects.select_related("user")
        .filter(key_hash=api_key_hash(key), revoked_at__isnull=True)
        .first()
    )


def api_key_list(*, user) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user)
