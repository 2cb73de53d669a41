"""Reads of rooms and agents, always scoped to their owner and to live (not soft-deleted) rows."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

from pantheon.errors import NotFound
from rooms.models import Agent, Room


def room_list(*, user: AbstractBaseUser) -> QuerySet[Room]:
    """The user's live rooms, newest first, each with its live agents prefetched in position order."""
    return (
        Room.objects.live().filter(owner=user).prefetch_related(Prefetch("agents", queryset=_agents_live()))
    )


def room_get(*, user: AbstractBaseUser, room_id: uuid.UUID | str) -> Room:
    """A live room the user owns, or 404: missing, deleted and foreign rooms look the same."""
    try:
        return Room.objects.live().get(pk=room_id, owner=user)
    except (Room.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFound() from exc


def _agents_live() -> QuerySet[Agent]:
    return Agent.objects.live().order_by("position", "id")


def agent_list(*, room: Room) -> QuerySet[Agent]:
    """The room's live agents, in position order (the order roundtable answers in)."""
    return _agents_live().filter(room=room)
