"""Reads of rooms and agents, always scoped to their owner."""

import uuid

from django.db.models import Prefetch, QuerySet

from pantheon.api.exceptions import NotFound
from rooms.models import Agent, Room


def room_list(*, user) -> QuerySet[Room]:
    return (
        Room.objects.live()
        .filter(owner=user)
        .prefetch_related(Prefetch("agents", queryset=Agent.objects.live().order_by("position", "id")))
    )


def room_get(*, user, room_id: uuid.UUID | str) -> Room:
    try:
        return Room.objects.live().get(pk=room_id, owner=user)
    except (Room.DoesNotExist, ValueError) as exc:
        raise NotFound() from exc


def agent_list(*, room: Room) -> QuerySet[Agent]:
    return Agent.objects.live().filter(room=room).order_by("position", "id")
