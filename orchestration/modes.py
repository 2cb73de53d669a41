"""Which agents answer a turn: manual @tags, roundtable, or the manager model's routing decision."""

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestration.parsing import validation_brief
from rooms.models import Agent

logger = logging.getLogger(__name__)

TAG_RE = re.compile(r"(?<![\w@])@([A-Za-z][A-Za-z0-9_-]{0,31})(?![A-Za-z0-9_-])")


def agents_select_manual(*, agents: list[Agent], user_input: str) -> list[Agent]:
    """Every valid @tag, in the order the tags appear, each once; unknown tags are ignored."""
    by_key = {a.agent_key: a for a in agents}
    selected: list[Agent] = []
    for match in TAG_RE.finditer(user_input):
        agent = by_key.get(match.group(1).lower())
        if agent is not None and agent not in selected:
            selected.append(agent)
    return selected


def manual_tags_ignored(*, user_input: str, dispatched_keys: Iterable[str]) -> list[str]:
    """The @tags of a manual turn that dispatched no agent (unknown or deleted keys), as typed, each
    once, in order: the dispatch rule above drops them; a response names them."""
    dispatched = {key.lower() for key in dispatched_keys}
    ignored: list[str] = []
    for match in TAG_RE.finditer(user_input):
        tag = match.group(1)
        if tag.lower() not in dispatched and tag not in ignored:
            ignored.append(tag)
    return ignored


def agents_select_roundtable(*, agents: list[Agent]) -> list[Agent]:
    return sorted(agents, key=lambda a: (a.position, a.pk))


class RoutingDecision(BaseModel):
    """The manager's strict JSON; the legacy single-key form is accepted too."""

    model_config = ConfigDict(extra="ignore", strict=True)

    selected_agent_keys: list[str] | None = None
    selected_agent_key: str | None = None


@dataclass(frozen=True)
class RoutingResult:
    agents: list[Agent]
    used_fallback: bool
    reason: str = ""


def routing_decision_parse(*, raw: str | None, agents: list[Agent]) -> RoutingResult:
    """Validate the manager's answer against the room's agents; fall back to the first agent by
    position on anything unusable (logged briefly, never raised)."""
    ordered = agents_select_roundtable(agents=agents)
    fallback = ordered[:1]
    if raw is None:
        return RoutingResult(fallback, True, "routing call failed")
    try:
        decision = RoutingDecision.model_validate_json(raw)
    except ValidationError as exc:
        logger.warning("routing answer invalid (%s); falling back", validation_brief(exc))
        return RoutingResult(fallback, True, "invalid JSON")
    keys, chosen = routing_agents(decision, agents=agents)
    if not chosen:
        logger.warning("routing selected no known agent (%r); falling back", keys[:5])
        return RoutingResult(fallback, True, "no known agent selected")
    return RoutingResult(chosen, False)


def routing_agents(decision: RoutingDecision, *, agents: list[Agent]) -> tuple[list[str], list[Agent]]:
    """The keys the manager named, and the room's agents among them in that order, each once."""
    keys = decision.selected_agent_keys
    if keys is None and decision.selected_agent_key is not None:
        keys = [decision.selected_agent_key]
    by_key = {a.agent_key: a for a in agents}
    chosen: list[Agent] = []
    for key in keys or []:
        agent = by_key.get(key.strip().lstrip("@").lower())
        if agent is not None and agent not in chosen:
            chosen.append(agent)
    return keys or [], chosen
