"""What a turn knows as it goes, in parts: each step of the pipeline receives the parts it needs.

``TurnScope`` (what was read before the claim) → ``TurnPlan`` (who may answer and what each would see)
→ ``Reservation`` (what the prepared turn holds and must give back) → ``TurnWork`` (what the paid part
did) → ``TurnOutcome`` (what the caller gets). ``TurnProgress`` ties one turn's parts together.
"""

import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from orchestration.context import Budget, ContextPlan, SessionContext
from orchestration.services.calls import CallLog, CallScope
from orchestration.turns.request import TurnRequest
from orchestration.turns.store import SessionClaim, TurnScope
from rooms.models import Agent
from sessions_app.models import ChatSession, Message, Turn, TurnContextAudit
from usage.models import CreditHold, LlmCallEvent
from usage.services.holds import HoldRequest


@dataclass
class TurnPlan:
    """Who may answer and what each would see: the candidates, the session's past read with the
    claim, each candidate's budget and its context on the bare input (from the budget check)."""

    candidates: list[Agent]
    context: SessionContext | None = None
    budgets: dict[str, Budget] = field(default_factory=dict)
    bare_plans: dict[str, ContextPlan] = field(default_factory=dict)


@dataclass
class Reservation:
    """What a prepared turn holds, each given back exactly once whatever happens: a slot among the
    user's turns in flight, the session's claim, the credit hold (and the summary's share of it)."""

    slot_key: str = ""
    claim: SessionClaim | None = None
    hold: CreditHold | None = None
    summary_share: HoldRequest | None = None


@dataclass
class AgentReply:
    agent: Agent
    content: str
    model_alias: str


@dataclass
class TurnWork:
    """What the paid part did, written in one go at the end."""

    selected: list[Agent] = field(default_factory=list)
    calls: CallLog = field(default_factory=CallLog)
    replies: list[AgentReply] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    audits: list[TurnContextAudit] = field(default_factory=list)
    routing_used_fallback: bool = False
    summary_triggered: bool = False
    # A discussion: the context planned for its next speaker, why it stopped, and its record (what
    # was asked, and each step with the manager's decision).
    next_plan: ContextPlan | None = None
    stop_reason: str = ""
    discussion: dict | None = None
    # Set once the turn's rows are committed: from then on nothing may be written for it again.
    committed: bool = False


@dataclass
class TurnProgress:
    """One prepared turn: its request and the parts above. ``turn_run`` takes it from here."""

    request: TurnRequest
    scope: TurnScope
    plan: TurnPlan
    reserved: Reservation = field(default_factory=Reservation)
    work: TurnWork = field(default_factory=TurnWork)
    turn_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: float = field(default_factory=time.perf_counter)
    # Set by a streaming response when its client went away (or its credential was revoked:
    # ``cancel_code`` says which): the agent in progress is read to its end (its tokens are paid
    # for), no further agent is called, the turn commits as partial.
    cancelled: threading.Event = field(default_factory=threading.Event)
    cancel_code: str = "client_disconnected"

    @property
    def session(self) -> ChatSession:
        return self.scope.session

    @property
    def claim(self) -> SessionClaim | None:
        return self.reserved.claim

    @property
    def call_scope(self) -> CallScope:
        return CallScope(
            user_id=self.request.user.pk, room_id=self.session.room_id, session_id=self.session.pk
        )


@dataclass(frozen=True)
class TurnUsage:
    """The usage of a turn, computed once: ``cost_usd`` is the cost of every call (routing and failed
    calls included, what the provider charges); ``billed_cost_usd`` and ``credits_burned`` are what the
    user was charged — the same meaning as in ``/usage`` and ``/auth/me``."""

    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    billed_cost_usd: Decimal
    credits_burned: Decimal
    credits_unbilled: Decimal
    llm_calls: int

    @classmethod
    def of(cls, events: list[LlmCallEvent]) -> "TurnUsage":
        billed = [e for e in events if e.billable]
        return cls(
            input_tokens=sum(e.input_tokens for e in events),
            output_tokens=sum(e.output_tokens for e in events),
            cost_usd=sum((e.cost_usd for e in events), Decimal(0)),
            billed_cost_usd=sum((e.cost_usd for e in billed), Decimal(0)),
            credits_burned=sum((e.credits_burned for e in billed), Decimal(0)),
            credits_unbilled=sum((e.credits_unbilled for e in events), Decimal(0)),
            llm_calls=len(events),
        )


@dataclass
class TurnOutcome:
    turn: Turn
    messages: list[Message]
    events: list[LlmCallEvent]
    usage: TurnUsage
    replayed: bool = False
    llm_seconds: float = 0.0
    # The budgets this turn took past their soft limit (once per budget and period; docs/budgets.md).
    budget_warnings: list[dict] = field(default_factory=list)
