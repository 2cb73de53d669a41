"""Writes of rooms and agents. Every rule of the domain is checked here, whoever the caller is."""

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from pantheon.errors import InvalidInput
from rooms.errors import AgentKeyTaken
from rooms.models import AGENT_KEY_PATTERN, Agent, Room
from usage.selectors import catalog_model_get_active

AGENT_KEY_RULE = "An agent key starts with a lowercase letter and has at most 32 of a-z, 0-9, '_' and '-'."
_AGENT_KEY_RE = re.compile(AGENT_KEY_PATTERN)


def _agent_key_validate(agent_key: str) -> None:
    # fullmatch: "$" alone would accept a trailing newline.
    if not _AGENT_KEY_RE.fullmatch(agent_key):
        raise InvalidInput.for_field("agent_key", AGENT_KEY_RULE)


def _model_alias_validate(model_alias: str) -> None:
    if catalog_model_get_active(alias=model_alias) is None:
        raise InvalidInput.for_field(
            "model_alias", f"'{model_alias}' is not an active catalog model (see GET /api/v1/models)."
        )


def _agent_key_is_live(*, room_id, agent_key: str) -> bool:
    return Agent.objects.live().filter(room_id=room_id, agent_key=agent_key).exists()


def room_create(*, owner: AbstractBaseUser, name: str, description: str = "") -> Room:
    return Room.objects.create(owner=owner, name=name, description=description)


def room_update(*, room: Room, name: str | None = None, description: str | None = None) -> Room:
    """Change the given fields only (None leaves a field as it is)."""
    changes = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    if changes:
        for field, value in changes.items():
            setattr(room, field, value)
        room.save(update_fields=[*changes, "updated_at"])
    return room


@transaction.atomic
def room_delete(*, room: Room) -> None:
    """Soft delete: the room and everything under it answer 404 from now on; rows stay for audit."""
    now = timezone.now()
    Room.objects.filter(pk=room.pk).update(deleted_at=now)
    Agent.objects.live().filter(room=room).update(deleted_at=now)
    room.deleted_at = now


def agent_create(
    *,
    room: Room,
    agent_key: str,
    name: str,
    model_alias: str,
    role_prompt: str = "",
    position: int | None = None,
) -> Agent:
    """Add an agent to the room; without a position it goes after the last live agent."""
    _agent_key_validate(agent_key)
    _model_alias_validate(model_alias)
    if _agent_key_is_live(room_id=room.pk, agent_key=agent_key):
        raise AgentKeyTaken(agent_key)
    if position is None:
        last = Agent.objects.live().filter(room=room).aggregate(last=Max("position"))["last"]
        position = 0 if last is None else last + 1
    try:
        # Two simultaneous creates both pass the check above; the partial unique index decides.
        # The savepoint keeps a caller's surrounding transaction usable after the IntegrityError.
        with transaction.atomic():
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


def agent_update(
    *,
    agent: Agent,
    agent_key: str | None = None,
    name: str | None = None,
    model_alias: str | None = None,
    role_prompt: str | None = None,
    position: int | None = None,
) -> Agent:
    """Change the given fields only (None leaves a field as it is). A new key must be free."""
    changes = {
        field: value
        for field, value in {
            "agent_key": agent_key,
            "name": name,
            "model_alias": model_alias,
            "role_prompt": role_prompt,
            "position": position,
        }.items()
        if value is not None
    }
    if "agent_key" in changes:
        _agent_key_validate(agent_key)
        if agent_key == agent.agent_key:
            del changes["agent_key"]
        elif _agent_key_is_live(room_id=agent.room_id, agent_key=agent_key):
            raise AgentKeyTaken(agent_key)
    if "model_alias" in changes:
        _model_alias_validate(model_alias)
    if not changes:
        return agent
    for field, value in changes.items():
        setattr(agent, field, value)
    try:
        with transaction.atomic():
            agent.save(update_fields=[*changes, "updated_at"])
    except IntegrityError as exc:
        raise AgentKeyTaken(agent.agent_key) from exc
    return agent


def agent_delete(*, agent: Agent) -> None:
    """Soft delete; the key is free for a new agent of the room at once."""
    agent.deleted_at = timezone.now()
    agent.save(update_fields=["deleted_at", "updated_at"])
