"""One user turn, from input to a committed, metered result (docs/transactions.md).

A turn is a short pipeline over two objects: a ``TurnRequest`` (what was asked, validated once, here,
whoever asks: the API, the OpenAI-compatible endpoint, a command) and a ``TurnProgress`` (what the
turn has learned and done so far). Read top to bottom:

``turn_prepare`` — refusals happen here, before any LLM call:
    session, agents and catalog (404) → idempotent replay → the candidate agents (422) → a slot among
    the user's turns in flight (429) → claim the session (409), with its history → replay again (a
    twin may have committed while we waited) → the input fits every candidate's budget (422) → credit
    hold (402). On PostgreSQL, four statements (``turn_sql``).
``turn_run`` — the paid part:
    routing (orchestrator) → each agent's call, seeing the replies before it (streamed to
    ``on_event`` when asked) → one commit: turn, messages, audits, usage, hold settlement, ledger,
    claim release (two statements on PostgreSQL). Any failure goes through ``_turn_abandon``
    (orphaned usage written, hold and claim released) — the one place a failed turn cleans up.

``turn_execute`` runs both for a plain request/response turn.
"""

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestration.context import (
    Budget,
    ContextPlan,
    SessionContext,
    context_prepare,
    summary_trigger,
    turn_context_tokens,
)
from orchestration.errors import (
    ContextBudgetExceeded,
    IdempotencyKeyReused,
    InvalidInput,
    LlmUnavailable,
    NoAgentSelected,
    TurnConflict,
    TurnsInFlight,
    TurnWriteFailed,
)
from orchestration.llm.gateway import LlmGateway, LlmRequest
from orchestration.llm.registry import gateway_call_quiet_bound_seconds, gateway_get
from orchestration.llm.tokens import count_messages_tokens
from orchestration.modes import agents_select_manual, agents_select_roundtable, routing_decision_parse
from orchestration.prompts import routing_prompt_build, system_prompt_build
from orchestration.selectors import session_context_load
from orchestration.services import turn_sql
from orchestration.services.calls import CallLog, CallScope, llm_call_staged
from orchestration.services.sequencing import (
    SessionClaim,
    claim_wait,
    session_claim,
    session_claim_extend,
    session_claim_release,
)
from orchestration.services.summaries import summary_enqueue, summary_worst_case
from pantheon.db import sql_fast_path
from pantheon.errors import ApplicationError, NotFound
from pantheon.limits import slot_acquire, slot_release
from pantheon.logging import turn_log_context
from pantheon.observability import TurnObserved, observe
from rooms.models import Agent
from rooms.selectors import agent_list
from sessions_app.models import ChatSession, Message, Turn, TurnContextAudit
from sessions_app.selectors import session_get
from usage.metering import charge_compute
from usage.models import CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.selectors import PricedModel, priced_models_get
from usage.services.events import (
    usage_events_bill,
    usage_events_charge,
    usage_events_commit,
    usage_events_write_orphaned,
)
from usage.services.holds import (
    HoldRequest,
    credit_hold_extend,
    credit_hold_place,
    credit_hold_release,
    summary_hold_expiry,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = 200
ROUTING_MAX_OUTPUT_TOKENS = 256
# The framing a same-turn reply adds around an agent's output ("Name: …" as a message).
REPLY_FRAMING_TOKENS = 16

# ``on_event(name, data)``: the turn's progress as it happens (docs/streaming.md lists the events).
TurnEventSink = Callable[[str, dict], None]


@dataclass(frozen=True)
class TurnRequest:
    """A turn as asked, validated: ``turn_request_build`` is the only way to make one."""

    user: object
    session_id: uuid.UUID | str
    user_input: str
    mode: str
    idempotency_key: str | None
    fingerprint: str
    # Called with the session claim once the turn holds it (after the replay check, before the
    # budget and the hold): a caller's own check of the session, e.g. the OpenAI endpoint's
    # "the conversation's head has not moved" (openai_compat.services). What it raises, the turn
    # raises, with the claim and the in-flight slot given back.
    after_claim: Callable[[SessionClaim], None] | None = field(default=None, compare=False)


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


@dataclass
class AgentReply:
    agent: Agent
    content: str
    model_alias: str


@dataclass
class TurnProgress:
    """What a turn has learned and done so far; written in one go at the end."""

    request: TurnRequest
    session: ChatSession
    agents: list[Agent]
    priced: dict[str, PricedModel]
    candidates: list[Agent]
    turn_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: float = field(default_factory=time.perf_counter)
    claim: SessionClaim | None = None
    context: SessionContext | None = None
    budgets: dict[str, Budget] = field(default_factory=dict)
    # Each candidate's context on the bare input (no same-turn replies), from the budget check.
    bare_plans: dict[str, ContextPlan] = field(default_factory=dict)
    hold: CreditHold | None = None
    summary_share: HoldRequest | None = None
    selected: list[Agent] = field(default_factory=list)
    calls: CallLog = field(default_factory=CallLog)
    replies: list[AgentReply] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    audits: list[TurnContextAudit] = field(default_factory=list)
    routing_used_fallback: bool = False
    summary_triggered: bool = False
    # Set by a streaming response when its client went away: the agent in progress is read to its
    # end (its tokens are paid for), no further agent is called, the turn commits as partial.
    cancelled: threading.Event = field(default_factory=threading.Event)
    slot_key: str = ""
    # Set once the turn's rows are committed: from then on nothing may be written for it again.
    committed: bool = False

    @property
    def scope(self) -> CallScope:
        return CallScope(
            user_id=self.request.user.pk, room_id=self.session.room_id, session_id=self.session.pk
        )


# --- the request ---------------------------------------------------------------------------------


def turn_request_build(
    *, user, session_id: uuid.UUID | str, user_input: str, mode: str, idempotency_key: str | None = None
) -> TurnRequest:
    """Validate a turn's input. Raises ``InvalidInput`` (400) with the failing field."""
    text = (user_input or "").strip() if isinstance(user_input, str) else ""
    if not text:
        raise InvalidInput("user_input must not be empty.", extra={"fields": {"user_input": ["blank"]}})
    if len(text) > settings.TURN_USER_INPUT_MAX_CHARS:
        raise InvalidInput(
            f"user_input is longer than {settings.TURN_USER_INPUT_MAX_CHARS} characters.",
            extra={"fields": {"user_input": ["max_length"]}},
        )
    if "\x00" in text:
        raise InvalidInput.for_field("user_input", "NUL characters are not allowed.")
    if mode not in Turn.Mode.values:
        raise InvalidInput(
            f"Unknown mode {mode!r}; use one of: {', '.join(Turn.Mode.values)}.",
            extra={"fields": {"mode": ["invalid"]}},
        )
    key = idempotency_key or None
    if key is not None and (len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable()):
        raise InvalidInput(
            f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters.",
            extra={"fields": {"Idempotency-Key": ["invalid"]}},
        )
    fingerprint = hashlib.sha256(json.dumps([mode, text]).encode()).hexdigest()
    return TurnRequest(
        user=user,
        session_id=session_id,
        user_input=text,
        mode=mode,
        idempotency_key=key,
        fingerprint=fingerprint,
    )


def turn_execute(
    *, request: TurnRequest, gateway: LlmGateway | None = None, on_event: TurnEventSink | None = None
) -> TurnOutcome:
    """Run one turn for the session's owner. Raises an ``ApplicationError`` for every refusal."""
    prepared = turn_prepare(request)
    if isinstance(prepared, TurnOutcome):
        return prepared
    return turn_run(prepared, gateway=gateway, on_event=on_event)


# --- before any call: every refusal --------------------------------------------------------------


def turn_prepare(request: TurnRequest) -> TurnProgress | TurnOutcome:
    """Everything a turn checks and reserves before its first LLM call. Returns the stored outcome
    when the request replays an ``Idempotency-Key``; raises ``ApplicationError`` on refusal. A
    returned ``TurnProgress`` holds a session claim, a credit hold and an in-flight slot, which
    ``turn_run`` gives back whatever happens."""
    started = time.perf_counter()
    try:
        session, agents, priced, replay_turn_id = _scope_load(request)
        if replay_turn_id is not None:
            return _replay(turn_id=replay_turn_id, request=request)
        progress = TurnProgress(
            request=request,
            session=session,
            agents=agents,
            priced=priced,
            candidates=_candidates_select(request=request, agents=agents),
            started=started,
        )
        with turn_log_context(progress.turn_id):
            _slot_take(progress)
            try:
                return _claimed_and_held(progress)
            except BaseException:
                _slot_give_back(progress)
                raise
    except ApplicationError as exc:
        _refusal_observe(request=request, exc=exc, started=started)
        raise


def _scope_load(
    request: TurnRequest,
) -> tuple[ChatSession, list[Agent], dict[str, PricedModel], uuid.UUID | None]:
    """The session (404 unless a live one of a live room the user owns), the room's agents, the
    catalog with its prices, and the turn stored under the request's Idempotency-Key, if any."""
    helpers = {settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS, settings.SUMMARY_MODEL_ALIAS}
    if sql_fast_path():
        try:
            session_id = uuid.UUID(str(request.session_id))
        except ValueError as exc:
            raise NotFound() from exc
        scope = turn_sql.scope_load(
            user_id=request.user.pk,
            session_id=session_id,
            idempotency_key=request.idempotency_key,
            aliases=helpers,
        )
        if scope is None:
            raise NotFound()
        return scope.session, scope.agents, scope.priced, scope.replay_turn_id
    session = session_get(user=request.user, session_id=request.session_id)
    agents = list(agent_list(room=session.room))
    priced = priced_models_get(aliases={a.model_alias for a in agents} | helpers)
    return session, agents, priced, _replay_turn_id(session_id=session.pk, key=request.idempotency_key)


def _replay_turn_id(*, session_id: uuid.UUID, key: str | None) -> uuid.UUID | None:
    """ORM path: the turn the session stores under ``key``, if any."""
    if not key:
        return None
    turns = Turn.objects.filter(session_id=session_id, idempotency_key=key)
    return turns.values_list("id", flat=True).first()


def _replay(*, turn_id: uuid.UUID, request: TurnRequest) -> TurnOutcome:
    """The stored result of an Idempotency-Key: the same body, or the stored refusal."""
    turn = Turn.objects.get(pk=turn_id)
    if turn.request_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused()
    if turn.status == Turn.Status.FAILED:
        raise _llm_unavailable(turn)
    events = list(LlmCallEvent.objects.filter(turn_id=turn.pk).order_by("created_at", "id"))
    return TurnOutcome(
        turn=turn,
        messages=list(turn.messages.order_by("order")),
        events=events,
        usage=TurnUsage.of(events),
        replayed=True,
    )


def _candidates_select(*, request: TurnRequest, agents: list[Agent]) -> list[Agent]:
    """The agents that may answer: the @tagged ones (manual), or every agent (roundtable, and
    orchestrator, where the manager then picks among them)."""
    room_keys = [a.agent_key for a in agents]
    if not agents:
        raise NoAgentSelected("This room has no agents yet: add one first.", extra={"agent_keys": []})
    if request.mode == Turn.Mode.MANUAL:
        selected = agents_select_manual(agents=agents, user_input=request.user_input)
        if not selected:
            raise NoAgentSelected(
                "Manual mode needs at least one valid @tag, e.g. @" + room_keys[0] + ".",
                extra={"agent_keys": room_keys},
            )
        return selected
    return agents_select_roundtable(agents=agents)


def _slot_take(progress: TurnProgress) -> None:
    """At most ``TURNS_IN_FLIGHT_PER_USER`` turns of a user run or wait at once: one user cannot tie
    up every web thread with turns queued on a busy session."""
    key = f"turns-in-flight:{progress.request.user.pk}"
    if not slot_acquire(key, limit=settings.TURNS_IN_FLIGHT_PER_USER, ttl_seconds=_claim_ttl(progress)):
        raise TurnsInFlight(retry_after_seconds=settings.TURN_CONFLICT_RETRY_AFTER_SECONDS)
    progress.slot_key = key


def _slot_give_back(progress: TurnProgress) -> None:
    """Give the in-flight slot back, once: a second release would free another turn's slot."""
    key, progress.slot_key = progress.slot_key, ""
    if key:
        slot_release(key)


def _claim_ttl(progress: TurnProgress) -> float:
    """A claim outlives the turn's worst case (each call at its bound, routing included), so a
    turn never loses it while working; a dead worker's claim frees the session by itself."""
    calls = len(progress.candidates) + 1
    return gateway_call_quiet_bound_seconds() * calls + settings.TURN_CLAIM_MARGIN_SECONDS


def _claimed_and_held(progress: TurnProgress) -> TurnProgress | TurnOutcome:
    request = progress.request
    progress.budgets = {
        a.agent_key: Budget.for_agent(
            context_window_tokens=a.context_window_tokens,
            model_context_window=m.context_window,
            model_max_output_tokens=m.max_output_tokens,
        )
        for a in progress.candidates
        if (m := progress.priced.get(a.model_alias))
    }
    replay_turn_id = _claim_with_context(progress)
    try:
        if replay_turn_id is not None:
            session_claim_release(claim=progress.claim)
            _slot_give_back(progress)
            return _replay(turn_id=replay_turn_id, request=request)
        if request.after_claim is not None:
            request.after_claim(progress.claim)
        _budget_fit(progress)
        progress.hold = credit_hold_place(hold=_hold_request(progress))
    except BaseException:
        session_claim_release(claim=progress.claim)
        raise
    logger.info(
        "turn prepared session=%s mode=%s candidates=%s hold=%s",
        progress.session.pk,
        request.mode,
        [a.agent_key for a in progress.candidates],
        progress.hold.amount,
    )
    return progress


def _claim_with_context(progress: TurnProgress) -> uuid.UUID | None:
    """Claim the session, then read its past (the latest summary, the history that can still fit
    the largest budget, the anchor) and whether a twin committed the request's key meanwhile — one
    statement on PostgreSQL. Returns the twin's turn id, if any."""
    session_id, key = progress.session.pk, progress.request.idempotency_key
    max_history_tokens = max((b.tokens for b in progress.budgets.values()), default=0)
    ttl = _claim_ttl(progress)
    if sql_fast_path():

        def attempt() -> turn_sql.ClaimedContext | None:
            now = timezone.now()
            return turn_sql.claim_and_context(
                session_id=session_id,
                token=progress.turn_id,
                expires_at=now + timedelta(seconds=ttl),
                now=now,
                idempotency_key=key,
                max_history_tokens=max_history_tokens,
            )

        claimed = claim_wait(attempt)
        progress.claim, progress.context = claimed.claim, claimed.context
        return claimed.replay_turn_id
    progress.claim = session_claim(session_id=session_id, token=progress.turn_id, ttl_seconds=ttl)
    try:
        replay = _replay_turn_id(session_id=session_id, key=key)
        progress.context = session_context_load(
            session_id=session_id,
            next_turn_index=progress.claim.last_turn_index + 1,
            summary_requested_through=progress.claim.summary_due_through,
            max_history_tokens=max_history_tokens,
        )
    except BaseException:
        session_claim_release(claim=progress.claim)
        raise
    return replay


def _budget_fit(progress: TurnProgress) -> None:
    """Check the bare input against every candidate's budget.

    Manual and roundtable: a candidate that cannot fit refuses the turn (422). Orchestrator: the
    manager is offered only the agents that fit; none → 422.
    """
    fitting: list[Agent] = []
    rejected: list[tuple[Agent, ContextPlan]] = []
    for agent in progress.candidates:
        # An agent without an active model is kept: it fails its call with model_unavailable.
        plan = _plan_for(progress, agent) if agent.agent_key in progress.budgets else None
        if plan is not None and plan.rejected:
            rejected.append((agent, plan))
        else:
            fitting.append(agent)
            if plan is not None:
                progress.bare_plans[agent.agent_key] = plan
    orchestrated = progress.request.mode == Turn.Mode.ORCHESTRATOR
    if rejected and (not orchestrated or not fitting):
        agent, plan = rejected[0]
        _audit_build(session=progress.session, agent=agent, plan=plan).save()
        raise ContextBudgetExceeded(
            extra={
                "budget_tokens": plan.budget.tokens,
                "required_tokens": plan.tokens_after,
                "agent_key": agent.agent_key,
            }
        )
    progress.candidates = fitting


def _plan_for(progress: TurnProgress, agent: Agent) -> ContextPlan:
    names = {a.agent_key: f"{a.name} (@{a.agent_key})" for a in progress.agents}
    return context_prepare(
        system_prompt=system_prompt_build(
            agent_name=agent.name,
            agent_key=agent.agent_key,
            role_prompt=agent.role_prompt,
            others=[n for k, n in names.items() if k != agent.agent_key],
        ),
        session_context=progress.context,
        user_input=progress.request.user_input,
        same_turn_replies=[(r.agent.name, r.content) for r in progress.replies],
        budget=progress.budgets[agent.agent_key],
    )


def _hold_request(progress: TurnProgress) -> HoldRequest:
    """The turn's worst case at current prices: each candidate's planned input — the replies before
    it counted at their full output allowance, never above its budget — plus its full output; the
    routing call's worst case; and the summary the turn may trigger (its share is kept apart)."""
    credits = usd = Decimal(0)
    main_alias = ""
    orchestrated = progress.request.mode == Turn.Mode.ORCHESTRATOR
    summary_possible = False
    for position, agent in enumerate(progress.candidates):
        budget = progress.budgets.get(agent.agent_key)
        if budget is None:
            continue
        before = progress.candidates if orchestrated else progress.candidates[:position]
        replies = sum(
            progress.budgets[o.agent_key].max_output_tokens + REPLY_FRAMING_TOKENS
            for o in before
            if o is not agent and o.agent_key in progress.budgets
        )
        plan = progress.bare_plans[agent.agent_key]
        worst_input = min(plan.tokens_after + replies, budget.tokens)
        charge = _charge(progress.priced[agent.model_alias], worst_input, budget.max_output_tokens)
        credits, usd = credits + charge.credits, usd + charge.cost_usd
        main_alias = main_alias or agent.model_alias
        summary_possible |= summary_trigger(
            session_context=progress.context,
            tokens_before=plan.tokens_before + replies,
            budget_tokens=budget.tokens,
        )
    if orchestrated and (manager := progress.priced.get(settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS)):
        prompt = routing_prompt_build(agents=progress.candidates, user_input=progress.request.user_input)
        charge = _charge(manager, count_messages_tokens(m.content for m in prompt), ROUTING_MAX_OUTPUT_TOKENS)
        credits, usd = credits + charge.credits, usd + charge.cost_usd
    scope = progress.scope
    if summary_possible and (summary := summary_worst_case(priced=progress.priced)):
        credits, usd = credits + summary.credits, usd + summary.cost_usd
        progress.summary_share = HoldRequest(
            user_id=scope.user_id,
            kind=CreditHold.Kind.SUMMARY,
            amount=summary.credits,
            cost_usd=summary.cost_usd,
            model_alias=settings.SUMMARY_MODEL_ALIAS,
            room_id=scope.room_id,
            session_id=scope.session_id,
            expires_at=timezone.now(),  # set at commit, when the summary is asked for
        )
    return HoldRequest(
        user_id=scope.user_id,
        kind=CreditHold.Kind.TURN,
        amount=credits,
        cost_usd=usd,
        model_alias=main_alias,
        room_id=scope.room_id,
        session_id=scope.session_id,
        turn_id=progress.turn_id,
        expires_at=progress.claim.expires_at,
    )


def _charge(model: PricedModel, input_tokens: int, output_tokens: int):
    return charge_compute(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        price=model.price,
        credits_per_usd=settings.CREDITS_PER_USD,
    )


def _refusal_observe(*, request: TurnRequest, exc: ApplicationError, started: float) -> None:
    observe(
        TurnObserved(
            status=Turn.Status.FAILED if isinstance(exc, LlmUnavailable) else "refused",
            mode=request.mode,
            session_id=str(request.session_id),
            user_id=request.user.pk,
            code=exc.code,
            total_seconds=time.perf_counter() - started,
        )
    )


# --- the paid part ---------------------------------------------------------------------------------


def turn_run(
    progress: TurnProgress, *, gateway: LlmGateway | None = None, on_event: TurnEventSink | None = None
) -> TurnOutcome:
    """Route, call the agents with no transaction open, and commit once. Raises ``LlmUnavailable``
    (502) after committing a turn whose every call failed."""
    gateway = gateway or gateway_get()
    emit = on_event or _ignore
    try:
        with turn_log_context(progress.turn_id):
            _route(progress, gateway)
            emit(
                "turn.started",
                {
                    "turn_id": str(progress.turn_id),
                    "mode": progress.request.mode,
                    "agent_keys": [a.agent_key for a in progress.selected],
                },
            )
            _agents_answer(progress, gateway, on_event)
            outcome = _turn_commit(progress)
    except BaseException as exc:
        _turn_abandon(progress, exc)
        if isinstance(exc, ApplicationError):
            _refusal_observe(request=progress.request, exc=exc, started=progress.started)
            raise
        if isinstance(exc, Exception):
            raise TurnWriteFailed() from exc
        raise
    finally:
        _slot_give_back(progress)
    _turn_observe(progress, outcome, streamed=on_event is not None)
    if outcome.turn.status == Turn.Status.FAILED:
        raise _llm_unavailable(outcome.turn)
    return outcome


def _ignore(name: str, data: dict) -> None:
    return None


def _route(progress: TurnProgress, gateway: LlmGateway) -> None:
    """Orchestrator: ask the manager model (its call is recorded as a non-billable usage event).
    Manual and roundtable: every candidate answers, in order."""
    if progress.request.mode != Turn.Mode.ORCHESTRATOR:
        progress.selected = list(progress.candidates)
        return
    alias = settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS
    model = progress.priced.get(alias)
    raw = None
    if model is None:
        logger.error("manager model %r is not an active catalog model; routing falls back", alias)
    else:
        request = LlmRequest(
            model_alias=alias,
            provider_model=model.provider_model,
            messages=routing_prompt_build(agents=progress.candidates, user_input=progress.request.user_input),
            max_output_tokens=ROUTING_MAX_OUTPUT_TOKENS,
            purpose="routing",
            json_mode=True,
        )
        raw = llm_call_staged(
            gateway=gateway,
            request=request,
            model=model,
            log=progress.calls,
            scope=progress.scope,
            billable=False,
        )
    result = routing_decision_parse(raw=raw, agents=progress.candidates)
    progress.routing_used_fallback = result.used_fallback
    progress.selected = result.agents


def _agents_answer(progress: TurnProgress, gateway: LlmGateway, on_event: TurnEventSink | None) -> None:
    """One call per selected agent, in order, each seeing the replies before it. A failed call does
    not stop the turn; a cancelled turn (its client left) calls no further agent."""
    emit = on_event or _ignore
    for agent in progress.selected:
        if progress.cancelled.is_set():
            progress.errors.append({"agent_key": agent.agent_key, "code": "client_disconnected"})
            continue
        model = progress.priced.get(agent.model_alias)
        if model is None:
            progress.errors.append({"agent_key": agent.agent_key, "code": "model_unavailable"})
            emit("agent.failed", {"agent_key": agent.agent_key, "code": "model_unavailable"})
            continue
        # The first agent sees no reply of this turn: its context is the one the budget check built.
        plan = progress.bare_plans.get(agent.agent_key) if not progress.replies else None
        plan = plan or _plan_for(progress, agent)
        progress.summary_triggered |= plan.summary_triggered
        progress.audits.append(_audit_build(session=progress.session, agent=agent, plan=plan))
        if plan.rejected:  # the replies before it pushed this agent over its budget
            progress.errors.append({"agent_key": agent.agent_key, "code": "context_budget_exceeded"})
            emit("agent.failed", {"agent_key": agent.agent_key, "code": "context_budget_exceeded"})
            continue
        _claim_keep(progress)
        emit(
            "agent.started",
            {"agent_key": agent.agent_key, "agent_name": agent.name, "model_alias": model.alias},
        )
        on_delta = None
        if on_event is not None:

            def on_delta(text: str, key: str = agent.agent_key) -> None:
                emit("agent.delta", {"agent_key": key, "text": text})
                _claim_keep(progress)

        reply = llm_call_staged(
            gateway=gateway,
            request=LlmRequest(
                model_alias=model.alias,
                provider_model=model.provider_model,
                messages=plan.messages,
                max_output_tokens=plan.budget.max_output_tokens,
                agent_key=agent.agent_key,
                agent_name=agent.name,
            ),
            model=model,
            log=progress.calls,
            scope=progress.scope,
            on_delta=on_delta,
        )
        event = progress.calls.events[-1]
        if reply is None:
            progress.errors.append({"agent_key": agent.agent_key, "code": event.error_code})
            emit("agent.failed", {"agent_key": agent.agent_key, "code": event.error_code})
            continue
        progress.replies.append(AgentReply(agent=agent, content=reply, model_alias=model.alias))
        emit(
            "agent.completed",
            {
                "agent_key": agent.agent_key,
                "usage": {
                    "input_tokens": event.input_tokens,
                    "output_tokens": event.output_tokens,
                    "cost_usd": str(event.cost_usd),
                    "credits_burned": str(event.credits_burned),
                },
            },
        )


def _claim_keep(progress: TurnProgress) -> None:
    """Renew the session claim (and the hold, whose expiry follows it) when it nears its end: a long
    streamed answer is bounded by its idle timeout, not by a wall clock, so it may outlive the TTL
    the turn started with. Free while the claim has time left (no query)."""
    claim = progress.claim
    margin = gateway_call_quiet_bound_seconds() + 10
    if claim.expires_at - timezone.now() > timedelta(seconds=margin):
        return
    renewed = session_claim_extend(claim=claim, ttl_seconds=_claim_ttl(progress))
    if renewed is not None:
        progress.claim = renewed
        credit_hold_extend(hold=progress.hold, expires_at=renewed.expires_at)


def _audit_build(*, session: ChatSession, agent: Agent, plan: ContextPlan) -> TurnContextAudit:
    """The audit of one agent call; its turn is set when the turn is written (never, if rejected)."""
    return TurnContextAudit(
        session_id=session.pk,
        agent_key=agent.agent_key,
        model_alias=agent.model_alias,
        context_window=plan.budget.context_window,
        max_output_tokens=plan.budget.max_output_tokens,
        budget_tokens=plan.budget.tokens,
        tokens_before=plan.tokens_before,
        tokens_after=plan.tokens_after,
        summary_used=plan.summary_used,
        pruned_turn_count=plan.pruned_turn_count,
        pruned_through_turn_index=plan.pruned_through_turn_index,
        rejected=plan.rejected,
        summary_triggered=plan.summary_triggered,
    )


def _turn_commit(progress: TurnProgress) -> TurnOutcome:
    """Turn, messages, audits, usage events, hold settlement and ledger in one short transaction that
    also releases the claim; the summary, when due, is enqueued after the commit."""
    request, session = progress.request, progress.session
    if not progress.replies:
        status = Turn.Status.FAILED
    elif progress.errors:
        status = Turn.Status.PARTIAL
    else:
        status = Turn.Status.COMPLETED
    output = "\n\n".join(f"{r.agent.name}: {r.content}" for r in progress.replies)
    turn = Turn(
        id=progress.turn_id,
        session=session,
        mode=request.mode,
        user_input=request.user_input,
        assistant_output=output,
        status=status,
        responding_agent_keys=[r.agent.agent_key for r in progress.replies],
        agent_errors=progress.errors,
        routing_used_fallback=progress.routing_used_fallback,
        summary_triggered=progress.summary_triggered and status != Turn.Status.FAILED,
        context_tokens=turn_context_tokens(user_input=request.user_input, assistant_output=output),
        idempotency_key=request.idempotency_key,
        request_fingerprint=request.fingerprint,
    )
    messages = [
        Message(
            session=session, turn=turn, role=Message.Role.USER, mode=request.mode, content=request.user_input
        ),
        *(
            Message(
                session=session,
                turn=turn,
                role=Message.Role.ASSISTANT,
                agent_key=r.agent.agent_key,
                agent_name=r.agent.name,
                model_alias=r.model_alias,
                mode=request.mode,
                content=r.content,
                order=position,
            )
            for position, r in enumerate(progress.replies, start=1)
        ),
    ]
    for audit in progress.audits:
        audit.turn_id = turn.pk
    keep = None
    if turn.summary_triggered and progress.summary_share is not None:
        keep = replace(progress.summary_share, expires_at=summary_hold_expiry())
    if sql_fast_path():  # one statement, atomic by itself
        turn.turn_index = _turn_rows_write(progress, turn=turn, messages=messages, keep=keep)
    else:
        with transaction.atomic():
            turn.turn_index = _turn_rows_write_orm(progress, turn=turn, messages=messages, keep=keep)
        progress.committed = True  # the fast path sets it as soon as its statement has returned
    if turn.summary_triggered:
        transaction.on_commit(partial(summary_enqueue, session_id=session.pk, through_index=turn.turn_index))
    logger.info("turn committed index=%s status=%s", turn.turn_index, status)
    return TurnOutcome(
        turn=turn,
        messages=messages,
        events=progress.calls.events,
        usage=TurnUsage.of(progress.calls.events),
        llm_seconds=progress.calls.llm_seconds,
    )


def _turn_rows_write(
    progress: TurnProgress, *, turn: Turn, messages: list[Message], keep: HoldRequest | None
) -> int:
    """PostgreSQL: every row of the turn, the hold settled and the claim released, in one statement
    (``turn_sql.turn_write``). Returns the turn's index; raises ``TurnConflict`` if the claim was lost
    (another turn took the session after it expired) — and then nothing was written."""
    user_id, events = progress.request.user.pk, progress.calls.events
    charge = usage_events_charge(events)
    for event in events:
        event.turn_id = turn.pk
    written = turn_sql.turn_write(
        turn=turn,
        claimed_last_index=progress.claim.last_turn_index,
        messages=messages,
        audits=progress.audits,
        events=events,
        charge=charge,
        hold_id=progress.hold.pk,
        # Their money (the debit, what stays held for the summary) is settled by the statement itself.
        ledger=CreditLedgerEntry(
            user_id=user_id,
            kind=CreditLedgerEntry.Kind.TURN_DEBIT,
            amount=0,
            balance_after=0,
            turn_id=turn.pk,
        ),
        summary_hold=CreditHold(**(keep or _no_summary_share(progress)).__dict__),
        now=timezone.now(),
    )
    if written is None:
        raise TurnConflict()
    progress.committed = True
    index, debited = written
    usage_events_bill(events=events, debited=debited, user_id=user_id, turn_id=turn.pk)
    return index


def _no_summary_share(progress: TurnProgress) -> HoldRequest:
    return HoldRequest(
        user_id=progress.request.user.pk,
        kind=CreditHold.Kind.SUMMARY,
        amount=Decimal(0),
        expires_at=timezone.now(),
    )


def _turn_rows_write_orm(
    progress: TurnProgress, *, turn: Turn, messages: list[Message], keep: HoldRequest | None
) -> int:
    """The same writes through the ORM (SQLite, or ``TURN_SQL_FAST_PATH`` off), inside the caller's
    transaction."""
    # NO KEY UPDATE: a summary committing meanwhile checks its foreign key to this row with a KEY
    # SHARE lock, which this lock lets through — a plain FOR UPDATE would deadlock with it on the
    # credit account, which both lock next.
    locked = (
        ChatSession.objects.select_for_update(no_key=True)
        .only("claim_token", "last_turn_index", "summary_due_through")
        .get(pk=turn.session_id)
    )
    if locked.claim_token != progress.turn_id:
        raise TurnConflict()
    index = max(locked.last_turn_index, progress.claim.last_turn_index) + 1
    turn.turn_index = index
    turn.save(force_insert=True)
    Message.objects.bulk_create(messages)
    TurnContextAudit.objects.bulk_create(progress.audits)
    usage_events_commit(
        user_id=progress.request.user.pk,
        events=progress.calls.events,
        hold=progress.hold,
        turn_id=turn.pk,
        keep_for_summary=(replace(keep, covers_through_turn_index=index) if keep else None),
    )
    due = (
        max(locked.summary_due_through or 0, index) if turn.summary_triggered else locked.summary_due_through
    )
    ChatSession.objects.filter(pk=turn.session_id).update(
        last_turn_index=index,
        claim_token=None,
        claim_expires_at=None,
        summary_due_through=due,
        updated_at=timezone.now(),
    )
    return index


def _turn_abandon(progress: TurnProgress, exc: BaseException) -> None:
    """The one clean-up of a turn that will not commit: its calls' usage is written alone (the
    provider charged for them), its hold and its claim are given back. Never raises."""
    if progress.committed:  # a failure after the commit: the turn and its usage are written already
        logger.exception("turn failed after its commit: %s", type(exc).__name__)
        return
    if not isinstance(exc, ApplicationError):
        logger.error(
            "turn failed before commit after %d LLM calls: %s: %s",
            len(progress.calls.events),
            type(exc).__name__,
            str(exc)[:300],
        )
    usage_events_write_orphaned(events=progress.calls.events)
    for release in (
        partial(credit_hold_release, hold=progress.hold),
        partial(session_claim_release, claim=progress.claim),
    ):
        try:
            release()
        except Exception:
            logger.exception("could not release after a failed turn (the sweep will)")


def _turn_observe(progress: TurnProgress, outcome: TurnOutcome, *, streamed: bool) -> None:
    usage = outcome.usage
    observe(
        TurnObserved(
            status=outcome.turn.status,
            mode=outcome.turn.mode,
            turn_id=str(outcome.turn.pk),
            session_id=str(progress.session.pk),
            user_id=progress.request.user.pk,
            agent_keys=tuple(outcome.turn.responding_agent_keys),
            llm_seconds=outcome.llm_seconds,
            total_seconds=time.perf_counter() - progress.started,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
            credits_burned=usage.credits_burned,
            streamed=streamed,
        )
    )


def _llm_unavailable(turn: Turn) -> LlmUnavailable:
    return LlmUnavailable(
        extra={"turn_id": str(turn.pk), "turn_index": turn.turn_index, "errors": turn.agent_errors}
    )
