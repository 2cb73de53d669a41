"""Reads of sessions, turns, summaries: always scoped to the requesting user."""

import uuid

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

from pantheon.errors import NotFound
from sessions_app.models import ChatSession, Message, SessionSummary, Turn


def session_list(*, user, room_id: uuid.UUID) -> QuerySet[ChatSession]:
    return ChatSession.objects.live().filter(room_id=room_id, room__owner=user, room__deleted_at__isnull=True)


def session_get(*, user, session_id: uuid.UUID | str) -> ChatSession:
    """A live session of a live room the user owns, or 404 (missing, deleted or not yours)."""
    try:
        return (
            ChatSession.objects.live()
            .select_related("room")
            .get(pk=session_id, room__owner=user, room__deleted_at__isnull=True)
        )
    except (ChatSession.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFound() from exc


def turn_list(*, session: ChatSession) -> QuerySet[Turn]:
    return (
        Turn.objects.filter(session=session)
        .select_related("session")
        .order_by("turn_index")
        .prefetch_related(Prefetch("messages", queryset=Message.objects.order_by("order")))
    )


def summary_list(*, session: ChatSession) -> QuerySet[SessionSummary]:
    return SessionSummary.objects.filter(session=session).order_by("-covers_through_turn_index")
