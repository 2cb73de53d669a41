"""Writes of rooms and agents. Every rule of the domain is checked here, whoever the caller is."""

import re
from enum import Enum

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from pantheon.errors import InvalidInput
from rooms.errors import AgentKeyTaken
from rooms.models import AGENT_KEY_PATTERN, Agent, Room
from usage.models import LlmModel
from usage.selectors import catalog_model_get_active

AGENT_KEY_RULE = "An agent key starts with a lowercase letter and has at most 32 of a-z, 0-9, '_' and '-'."
_AGENT_KEY_RE = re.compile(AGENT_KEY_PATTERN)
# An agent's own context window must leave this much beside the model's output allowance: room for
# the role prompt, the input and some history.
CONTEXT_WINDOW_ROOM_TOKENS = 1024


class Keep(Enum):
    """``agent_update``'s default for a field whose ``None`` means something (back to the default)."""

    UNCHANGED = "unchanged"


def _agent_key_validate(agent_key: str) -> None:
    # fullmatch: "$" alone would accept a trailing newline.
    if not _AGENT_KEY_RE.fullmatch(agent_key):
        raise InvalidInput.for_field("agent_key", AGENT_KEY_RULE)


def _model_alias_validate(model_alias: str) -> LlmModel:
    model = catalog_model_get_active(alias=model_alias)
    if model is None:
        raise InvalidInput.for_field(
            "model_alias", f"'{model_alias}' is not an active catalog model (see GET /api/v1/models)."
        )
    return model


def _context_window_validate(context_window_tokens: int | None, *, model: LlmModel) -> None:
    """An agent's window fits its model and the operator's ceiling (``CONTEXT_WINDOW_MAX_TOKENS``), and
    leaves room for context beside the output allowance. None: the default window."""
    if context_window_tokens is None:
        return
    ceiling = min(model.context_window, settings.CONTEXT_WINDOW_MAX_TOKENS)
    output = min(model.max_output_tokens, settings.CONTEXT_MAX_OUTPUT_TOKENS)
    floor = output + CONTEXT_WINDOW_ROOM_TOKENS
    if context_window_tokens > ceiling:
        raise InvalidInput.for_field(
            "context_window_tokens",
            f"At most {ceiling} tokens on '{model.alias}': the lower of its window ({model.context_window}) "
            f"and this server's ceiling ({settings.CONTEXT_WINDOW_MAX_TOKENS}).",
        )
    if context_window_tokens < floor:
        raise InvalidInput.for_field(
            "context_window_tokens",
            f"At least {floor} tokens on '{model.alias}': its output allowance ({output}) plus "
            f"{CONTEXT_WINDOW_ROOM_TOKENS} for the context.",
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
    context_window_tokens: int | None = None,
) -> Agent:
    """Add an agent to the room; without a position it goes after the last live agent."""
    _agent_key_validate(agent_key)
    _context_window_validate(context_window_tokens, model=_model_alias_validate(model_alias))
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
                context_window_tokens=context_window_tokens,
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
    context_window_tokens: int | Keep | None = Keep.UNCHANGED,
) -> Agent:
    """Change the given fields only (None leaves a field as it is, but a None window is the default
    one). A new key must be free; a new model or window is checked against each other."""
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
    if context_window_tokens is not Keep.UNCHANGED:
        changes["context_window_tokens"] = context_window_tokens
    window = changes.get("context_window_tokens", agent.context_window_tokens)
    if "model_alias" in changes:  # the window, new or kept, must suit the new model
        _context_window_validate(window, model=_model_alias_validate(model_alias))
    elif changes.get("context_window_tokens") is not None:
        _context_window_validate(window, model=_model_alias_validate(agent.model_alias))
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
