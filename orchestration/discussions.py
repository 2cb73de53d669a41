"""Discussions: a turn in which agents talk among themselves until a stop condition holds
(docs/discussions.md). This module is the pure part: the discussion as asked (validated), the
manager's decision (strict JSON) and the fallback speaker. The turn runs it in
``orchestration.turns.discussion``.

Roundtable: ``rounds`` — every agent speaks N times, in position order, each seeing all before it.
Orchestrator: ``until`` — the manager picks the next speaker(s) after every step until it answers
``done`` or a stop condition holds.
"""

import logging
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Annotated, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from orchestration.errors import InvalidInput
from orchestration.modes import RoutingDecision, agents_select_roundtable, routing_agents
from orchestration.parsing import validation_brief
from rooms.models import Agent

logger = logging.getLogger(__name__)

# Whatever the credit cap, no discussion runs more steps than this (its claim and hold are sized
# by its steps).
STEPS_LIMIT = 100
ROUNDS_LIMIT = 20
SECONDS_LIMIT = 3600
DECISION_RAW_MAX_CHARS = 2000
REASON_MAX_CHARS = 500

# Why a discussion stopped (``Turn.stop_reason``).
STOP_ROUNDS = "rounds"  # roundtable: every round was spoken
STOP_MAX_STEPS = "max_steps"
STOP_PHRASE = "stop_phrase"
STOP_MAX_CREDITS = "max_credits"
STOP_MAX_SECONDS = "max_seconds"
STOP_ALL = "all_conditions"  # ``combine: all``: every condition given holds
STOP_MANAGER_DONE = "manager_done"
STOP_NO_SPEAKER = "no_speaker"  # nobody may speak next (one agent, repeats disallowed)
STOP_CONTEXT = "context"  # the next step could not fit its agent's context budget
STOP_CLIENT_LEFT = "client_disconnected"


class _Until(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_steps: Annotated[StrictInt, Field(ge=1, le=STEPS_LIMIT)] | None = None
    stop_phrase: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    stop_agent: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    max_credits: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=6)] | None = None
    max_seconds: Annotated[float, Field(gt=0, le=SECONDS_LIMIT)] | None = None
    combine: Literal["any", "all"] = "any"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rounds: Annotated[StrictInt, Field(ge=1, le=ROUNDS_LIMIT)] | None = None
    until: _Until | None = None
    allow_repeat: StrictBool = False


@dataclass(frozen=True)
class Discussion:
    """A discussion as asked, validated (``discussion_build`` is the only way to make one)."""

    rounds: int | None = None
    max_steps: int | None = None
    stop_phrase: str | None = None
    stop_agent: str | None = None
    max_credits: Decimal | None = None
    max_seconds: float | None = None
    combine: str = "any"
    allow_repeat: bool = False

    def steps(self, candidates: int) -> int:
        """The most steps it may run: the rounds, else its ``max_steps``, else
        ``DISCUSSION_MAX_STEPS``; never above ``STEPS_LIMIT``."""
        if self.rounds is not None:
            steps = self.rounds * candidates
            return min(steps, self.max_steps) if self.max_steps else steps
        return self.max_steps or settings.DISCUSSION_MAX_STEPS

    def as_dict(self) -> dict:
        """As stored on the turn and hashed into its fingerprint: only what was set."""
        data = asdict(self)
        if self.max_credits is not None:
            data["max_credits"] = str(self.max_credits)
        return {k: v for k, v in data.items() if v is not None}


def discussion_build(raw, *, mode: str) -> Discussion | None:
    """Validate a turn's ``discussion`` (None: a plain turn). Raises ``InvalidInput`` (400) naming
    the field: roundtable needs ``rounds``, orchestrator ``until``, manual cannot discuss."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput.for_field("discussion", "must be an object.")
    try:
        spec = _Spec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("discussion", *first.get("loc", ())))
        raise InvalidInput(
            f"{where}: {first.get('msg', 'invalid')}.",
            extra={"fields": {where: [first.get("type", "invalid")]}},
        ) from exc
    if mode == "manual":
        raise InvalidInput.for_field("discussion", "a discussion runs in roundtable or orchestrator mode.")
    if mode == "roundtable" and spec.rounds is None:
        raise InvalidInput.for_field("discussion.rounds", "a roundtable discussion needs rounds.")
    if mode == "orchestrator" and (spec.rounds is not None or spec.until is None):
        raise InvalidInput.for_field(
            "discussion.until", "an orchestrator discussion needs until (and no rounds)."
        )
    until = spec.until or _Until()
    if until.stop_agent is not None and until.stop_phrase is None:
        raise InvalidInput.for_field("discussion.until.stop_agent", "stop_agent needs a stop_phrase.")
    return Discussion(
        rounds=spec.rounds,
        max_steps=until.max_steps,
        stop_phrase=until.stop_phrase,
        stop_agent=until.stop_agent.strip().lstrip("@").lower() if until.stop_agent else None,
        max_credits=until.max_credits,
        max_seconds=until.max_seconds,
        combine=until.combine,
        allow_repeat=spec.allow_repeat,
    )


# --- the manager's decision ------------------------------------------------------------------------


class _Decision(RoutingDecision):
    """The manager's strict JSON in a discussion: the next speaker(s) as in routing, or done."""

    done: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    """Who speaks next and why, with the manager's answer as it came (kept on the turn)."""

    agents: list[Agent]
    done: bool
    used_fallback: bool
    reason: str
    raw: str | None

    def record(self) -> dict:
        return {
            "agent_keys": [a.agent_key for a in self.agents],
            "done": self.done,
            "used_fallback": self.used_fallback,
            "reason": self.reason[:REASON_MAX_CHARS],
            "raw": None if self.raw is None else self.raw[:DECISION_RAW_MAX_CHARS],
        }


def speaker_fallback(*, agents: list[Agent], last: Agent | None, allow_repeat: bool) -> list[Agent]:
    """The next agent by position after the last speaker (the first, to open), never the last
    speaker again when repeats are disallowed: [] when nobody may speak."""
    ordered = agents_select_roundtable(agents=agents)
    if last is None or last not in ordered:
        return ordered[:1]
    following = ordered[ordered.index(last) + 1 :] + ordered[: ordered.index(last) + 1]
    eligible = [a for a in following if allow_repeat or a != last]
    return eligible[:1]


def decision_parse(
    *, raw: str | None, agents: list[Agent], last: Agent | None, allow_repeat: bool
) -> Decision:
    """Validate the manager's answer against the room's agents and the repeat rule; anything
    unusable (failed call, invalid JSON, only unknown or disallowed agents) falls back to
    ``speaker_fallback``, which obeys the same rule. ``done`` is honoured once someone has spoken."""

    def fallback(why: str) -> Decision:
        chosen = speaker_fallback(agents=agents, last=last, allow_repeat=allow_repeat)
        return Decision(chosen, False, True, why, raw)

    if raw is None:
        return fallback("manager call failed")
    try:
        decision = _Decision.model_validate_json(raw)
    except ValidationError as exc:
        logger.warning("discussion decision invalid (%s); falling back", validation_brief(exc))
        return fallback("invalid JSON")
    if decision.done and last is not None:
        return Decision([], True, False, decision.reason, raw)
    keys, chosen = routing_agents(decision, agents=agents)
    if chosen and not allow_repeat and chosen[0] == last:
        chosen = chosen[1:]  # the agents named are each named once: only the first may repeat the last
    if not chosen:
        logger.warning("discussion decision named no agent who may speak (%r); falling back", keys[:5])
        return fallback("no agent who may speak next")
    return Decision(chosen, False, False, decision.reason, raw)


def stop_phrase_said(discussion: Discussion, *, agent_key: str, reply: str) -> bool:
    """The stop phrase (case-insensitive) in a reply of the named agent, or of any agent."""
    if not discussion.stop_phrase:
        return False
    if discussion.stop_agent and agent_key != discussion.stop_agent:
        return False
    return discussion.stop_phrase.casefold() in reply.casefold()


def stop_reason_between_steps(
    discussion: Discussion,
    *,
    steps_done: int,
    steps_limit: int,
    candidates: int,
    phrase_said: bool,
    seconds: float,
    billed: Decimal,
) -> str:
    """Why the discussion stops before its next step ("" : it goes on).

    Its steps are a bound whatever ``combine`` says (its hold is sized by them). Then the conditions
    given: with ``any`` the first that holds stops it; with ``all``, only all of them together.
    Before the first step nothing stops it but the bound."""
    if steps_done >= steps_limit:
        whole_rounds = discussion.rounds is not None and steps_done >= discussion.rounds * candidates
        return STOP_ROUNDS if whole_rounds else STOP_MAX_STEPS
    if steps_done == 0:
        return ""
    held: dict[str, bool] = {}
    if discussion.max_steps is not None:
        held[STOP_MAX_STEPS] = steps_done >= discussion.max_steps
    if discussion.stop_phrase is not None:
        held[STOP_PHRASE] = phrase_said
    if discussion.max_credits is not None:
        held[STOP_MAX_CREDITS] = billed >= discussion.max_credits
    if discussion.max_seconds is not None:
        held[STOP_MAX_SECONDS] = seconds >= discussion.max_seconds
    if discussion.combine == "all":
        return STOP_ALL if held and all(held.values()) else ""
    return next((name for name, holds in held.items() if holds), "")
