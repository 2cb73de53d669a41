"""Writes of rooms and agents."""

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from rest_framework import status

from pantheon.api.exceptions import ApplicationError
from rooms.models import Agent, Room
from usage.selectors import catalog_alias_is_active


class AgentKeyTaken(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "agent_key_taken"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"A live agent in this room already has the key '{key}'.",
            extra={"fields": {"agent_key": ["taken"]}},
        )


def _model_alias_validate(alias: str) -> None:
    if not catalog_alias_is_active(alias=alias):
        raise ApplicationError(
            f"Unknown model alias '{alias}': see GET /api/v1/models.",
            extra={"fields": {"model_alias": [f"'{alias}' is not an active catalog model."]}},
        )


def room_create(*, owner, name: str, description: str = "") -> Room:
    return Room.objects.create(owner=owner, name=name, description=description)


def room_update(*, room: Room, **fields) -> Room:
    for field, value in fields.items():
        setattr(room, field, value)
    room.save(update_fields=[*fields, "updated_at"])
    return room


@transaction.atomic
def room_delete(*, room: Room) -> None:
    """Soft delete: the room, its agents and its sessions answer 404 from now on."""
    now = timezone.now()
    Room.objects.filter(pk=room.pk).update(deleted_at=now)
    Agent.objects.live().filter(room=room).update(deleted_at=now)


def agent_create(
    *,
    room: Room,
    agent_key: str,
    name: str,
    model_alias: str,
    role_prompt: str = "",
    position: int | None = None,
) -> Agent:
    _model_alias_validate(model_alias)
    if Agent.objects.live().filter(room=room, agent_key=agent_key).exists():
        raise AgentKeyTaken(agent_key)
    if position is None:
        last = Agent.objects.live().filter(room=room).aggregate(m=Max("position"))["m"]
        position = 0 if last is None else last + 1
    try:
        with transaction.atomic():  # the partial unique index settles a race between two creates
            return Agent.objects.create(
                room=room,
                agent_key=agent_key,
                name=name,
                model_alias=model_alias,
                role_prompt=role_prompt,
                position=position,
            )
    except IntegrityError as exc:
        raise AgentKeyTaken(agent_key) from exc


def agent_update(*, agent: Agent, **fields) -> Agent:
    if "model_alias" in fields:
        _model_alias_validate(fields["model_alias"])
    new_key = fields.get("agent_key")
    key_changes = bool(new_key) and new_key != agent.agent_key
    if key_changes and Agent.objects.live().filter(room_id=agent.room_id, agent_key=new_key).exists():
        raise AgentKeyTaken(new_key)
    for field, value in fields.items():
        setattr(agent, field, value)
    try:
        with transaction.atomic():
            agent.save(update_fields=[*fields, "updated_at"])
    except IntegrityError as exc:
        raise AgentKeyTaken(new_key or agent.agent_key) from exc
    return agent


def agent_delete(*, agent: Agent) -> None:
    """Soft delete; the key is free for a new agent at once."""
    Agent.objects.filter(pk=agent.pk).update(deleted_at=timezone.now())
