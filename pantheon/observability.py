"""What the domain observed, reported to whoever listens: Server-Timing, metrics, logs.

The turn engine and the summary service call ``observe(...)`` with a small frozen record; the API
layer, the metrics and the logs subscribe with ``listen``. The domain imports this module only,
never its listeners, so dependencies keep pointing one way. A listener that raises is logged and
skipped: an observer must never fail the work it observes.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True)
class LlmCallObserved:
    """One LLM call ended (reply, failure or cut stream)."""

    purpose: str
    model_alias: str
    succeeded: bool
    error_code: str
    seconds: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    streamed: bool = False
    deployment: str = ""  # the catalog deployment it went to ("": the configured provider)


@dataclass(frozen=True)
class LlmFallover:
    """A call left ``deployment`` after its attempt there failed with ``error_code``, for the next."""

    model_alias: str
    deployment: str
    error_code: str
    to_deployment: str


@dataclass(frozen=True)
class TurnObserved:
    """A turn ended: committed (``completed``, ``partial``, ``failed``) or refused (``refused``,
    with the refusal's code)."""

    status: str
    mode: str
    turn_id: str = ""
    session_id: str = ""
    user_id: int | None = None
    agent_keys: tuple[str, ...] = ()
    code: str = ""
    llm_seconds: float = 0.0
    total_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    credits_burned: Decimal = Decimal(0)
    streamed: bool = False


@dataclass(frozen=True)
class BudgetWarned:
    """A budget reached its soft limit in its period (once per budget and period)."""

    budget_id: int
    scope: str
    period: str


@dataclass(frozen=True)
class SummaryObserved:
    """A summary was made (``made``), found already made (``existing``) or failed (``failed``); or
    the periodic sweep found it due and never made (``due``, ``swept=True``) and asked for it."""

    outcome: str
    session_id: str
    through_index: int
    swept: bool = False


@dataclass(frozen=True)
class HoldsSwept:
    """The periodic sweep freed holds left by turns or summaries that never finished."""

    turn_holds: int
    summary_holds: int
    credits_released: Decimal = Decimal(0)
    extra: dict[str, Any] = field(default_factory=dict)


_listeners: defaultdict[type, list[Callable[[Any], None]]] = defaultdict(list)


def listen(kind: type[E], listener: Callable[[E], None]) -> None:
    """Call ``listener(event)`` for every observed event of ``kind`` (idempotent per listener)."""
    if listener not in _listeners[kind]:
        _listeners[kind].append(listener)


def unlisten(kind: type[E], listener: Callable[[E], None]) -> None:
    if listener in _listeners[kind]:
        _listeners[kind].remove(listener)


def observe(event: object) -> None:
    for listener in _listeners.get(type(event), ()):
        try:
            listener(event)
        except Exception:
            logger.exception("observer %r failed on %s", listener, type(event).__name__)
