"""``turn_execute``: one user turn, from input to committed, metered result.

The shape of a turn (docs/transactions.md):
1. read and validate (session, agents, mode, idempotency) — plain reads, no transaction;
2. claim the session (one short UPDATE), so turns of a session run one after another;
3. plan each agent's context within its budget; reject before any call if the input cannot fit;
4. call the models one after another, **no transaction open**, each agent seeing the replies
   before it;
5. write turn, messages, audits, usage events and the credit debit in one short ``atomic`` that
   also releases the claim; if that write fails, the calls' usage events are written alone.
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestration.context import (
    Budget,
    ContextPlan,
    context_prepare,
    turn_context_tokens,
)
from orchestration.errors import (
    ContextBudgetExceeded,
    IdempotencyKeyReused,
    InsufficientCredits,
    LlmUnavailable,
    NoAgentSelected,
    TurnConflict,
    TurnWriteFailed,
)
from orchestration.llm.gateway import LlmGateway, LlmRequest
from orchestration.llm.registry import gateway_call_deadline_seconds, gateway_get
from orchestration.modes import (
    agents_select_manual,
    agents_select_roundtable,
    routing_decision_parse,
)
from orchestration.prompts import routing_prompt_build, system_prompt_build
from orchestration.selectors import session_context_load
from orchestration.services.calls import CallLog, llm_call_staged
from orchestration.services.sequencing import SessionClaim, session_claim, session_claim_release
from orchestration.tasks import session_summary_enqueue
from pantheon.errors import ApplicationError, InvalidInput
from pantheon.logging import turn_log_context
from pantheon.observability import TurnObserved, observe
from rooms.models import Agent
from sessions_app.models import ChatSession, Message, Turn, TurnContextAudit
from sessions_app.selectors import session_get
from usage.metering import charge_compute
from usage.models import LlmCallEvent
from usage.selectors import credit_balance_get, priced_models_get
from usage.services.events import (
    usage_events_commit,
    usage_events_write_orphaned,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = 200


@dataclass
class TurnOutcome:
    turn: Turn
    messages: list[Message]
    events: list[LlmCallEvent]
    replayed: bool = False
    llm_seconds: float = 0.0


@dataclass
class _Run(CallLog):
    """What a turn accumulates while its calls run; written in one go at the end."""

    turn_id: uuid.UUID = field(default_factory=uuid.uuid4)
    replies: list[tuple[Agent, str, str]] = field(default_factory=list)  # agent, content, model alias
    errors: list[dict] = field(default_factory=list)
    audits: list[TurnContextAudit] = field(default_factory=list)
    routing_used_fallback: bool = False
    summary_triggered: bool = False


def turn_execute(
    *,
    user,
    session_id: uuid.UUID | str,
    user_input: str,
    mode: str,
    idempotency_key: str | None = None,
    gateway: LlmGateway | None = None,
) -> TurnOutcome:
    """Run one turn of a session for its owner. Raises an ``ApplicationError`` for every refusal."""
    started = time.perf_counter()
    try:
        outcome = _turn_execute(
            user=user,
            session_id=session_id,
            user_input=user_input,
            mode=mode,
            idempotency_key=idempotency_key,
            gateway=gateway,
        )
    except ApplicationError as exc:
        observe(
            TurnObserved(
                status="refused" if not isinstance(exc, LlmUnavailable) else Turn.Status.FAILED,
                mode=mode,
                session_id=str(session_id),
                user_id=user.pk,
                code=exc.code,
                total_seconds=time.perf_counter() - started,
            )
        )
        raise
    if not outcome.replayed:
        turn, events = outcome.turn, outcome.events
        observe(
            TurnObserved(
                status=turn.status,
                mode=turn.mode,
                turn_id=str(turn.pk),
                session_id=str(turn.session_id),
                user_id=user.pk,
                agent_keys=tuple(turn.responding_agent_keys),
                llm_seconds=outcome.llm_seconds,
                total_seconds=time.perf_counter() - started,
                input_tokens=sum(e.input_tokens for e in events),
                output_tokens=sum(e.output_tokens for e in events),
                cost_usd=sum((e.cost_usd for e in events), Decimal(0)),
                credits_burned=sum((e.credits_burned for e in events), Decimal(0)),
            )
        )
    return outcome


def _turn_execute(
    *,
    user,
    session_id: uuid.UUID | str,
    user_input: str,
    mode: str,
    idempotency_key: str | None = None,
    gateway: LlmGateway | None = None,
) -> TurnOutcome:
    session = session_get(user=user, session_id=session_id)
    text = _input_validate(user_input)
    if mode not in Turn.Mode.values:
        raise InvalidInput(
            f"Unknown mode {mode!r}; use one of: {', '.join(Turn.Mode.values)}.",
            extra={"fields": {"mode": ["invalid"]}},
        )
    key = _idempotency_key_validate(idempotency_key)
    fingerprint = hashlib.sha256(json.dumps([mode, text]).encode()).hexdigest()
    if key and (replay := _idempotent_replay(session=session, key=key, fingerprint=fingerprint)):
        return replay

    gateway = gateway or gateway_get()
    run = _Run()
    with turn_log_context(run.turn_id):
        agents = list(Agent.objects.live().filter(room_id=session.room_id).order_by("position", "id"))
        aliases = {a.model_alias for a in agents} | {settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS}
        priced = priced_models_get(aliases=aliases)
        selected = _agents_select(
            user=user,
            session=session,
            mode=mode,
            text=text,
            agents=agents,
            priced=priced,
            gateway=gateway,
            run=run,
        )
        logger.info(
            "turn start session=%s mode=%s agents=%s", session.pk, mode, [a.agent_key for a in selected]
        )

        ttl = gateway_call_deadline_seconds() * (len(selected) + 1) + 30
        try:
            claim = session_claim(session_id=session.pk, ttl_seconds=ttl)
        except TurnConflict:
            usage_events_write_orphaned(events=run.events)
            raise
        try:
            if key and (replay := _idempotent_replay(session=session, key=key, fingerprint=fingerprint)):
                usage_events_write_orphaned(events=run.events)
                return replay
            _calls_run(
                user=user,
                session=session,
                claim=claim,
                text=text,
                agents=agents,
                selected=selected,
                priced=priced,
                gateway=gateway,
                run=run,
            )
            outcome = _turn_write(
                user=user,
                session=session,
                claim=claim,
                mode=mode,
                text=text,
                key=key,
                fingerprint=fingerprint,
                run=run,
            )
        except ApplicationError:
            usage_events_write_orphaned(events=run.events)
            raise
        except Exception as exc:
            logger.exception("turn failed before commit after %d LLM calls", len(run.events))
            usage_events_write_orphaned(events=run.events)
            raise TurnWriteFailed() from exc
        finally:
            session_claim_release(claim=claim)

        logger.info("turn committed index=%s status=%s", outcome.turn.turn_index, outcome.turn.status)
        if outcome.turn.status == Turn.Status.FAILED:
            raise _llm_unavailable(outcome.turn)
        return outcome


def _input_validate(user_input: str) -> str:
    text = (user_input or "").strip()
    if not text:
        raise InvalidInput("user_input must not be empty.", extra={"fields": {"user_input": ["blank"]}})
    if len(text) > settings.TURN_USER_INPUT_MAX_CHARS:
        raise InvalidInput(
            f"user_input is longer than {settings.TURN_USER_INPUT_MAX_CHARS} characters.",
            extra={"fields": {"user_input": ["max_length"]}},
        )
    return text


def _idempotency_key_validate(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters.",
            extra={"fields": {"Idempotency-Key": ["invalid"]}},
        )
    return key


def _idempotent_replay(*, session: ChatSession, key: str, fingerprint: str) -> TurnOutcome | None:
    turn = Turn.objects.filter(session=session, idempotency_key=key).first()
    if turn is None:
        return None
    if turn.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if turn.status == Turn.Status.FAILED:
        raise _llm_unavailable(turn)
    messages = list(turn.messages.order_by("order"))
    events = list(LlmCallEvent.objects.filter(turn_id=turn.pk))
    return TurnOutcome(turn=turn, messages=messages, events=events, replayed=True)


def _llm_unavailable(turn: Turn) -> LlmUnavailable:
    return LlmUnavailable(
        extra={"turn_id": str(turn.pk), "turn_index": turn.turn_index, "errors": turn.agent_errors}
    )


def _agents_select(*, user, session, mode, text, agents, priced, gateway, run: _Run) -> list[Agent]:
    room_keys = [a.agent_key for a in agents]
    if not agents:
        raise NoAgentSelected("This room has no agents yet: add one first.", extra={"agent_keys": []})
    if mode == Turn.Mode.MANUAL:
        selected = agents_select_manual(agents=agents, user_input=text)
        if not selected:
            raise NoAgentSelected(
                "Manual mode needs at least one valid @tag, e.g. @" + room_keys[0] + ".",
                extra={"agent_keys": room_keys},
            )
        return selected
    if mode == Turn.Mode.ROUNDTABLE:
        return agents_select_roundtable(agents=agents)
    return _route(
        user=user, session=session, text=text, agents=agents, priced=priced, gateway=gateway, run=run
    )


def _route(*, user, session, text, agents, priced, gateway, run: _Run) -> list[Agent]:
    """Ask the manager model; its call is recorded as a non-billable usage event."""
    alias = settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS
    model = priced.get(alias)
    raw = None
    if model is None:
        logger.error("manager model %r is not an active catalog model; routing falls back", alias)
    else:
        request = LlmRequest(
            model_alias=alias,
            provider_model=model.provider_model,
            messages=routing_prompt_build(agents=agents, user_input=text),
            max_output_tokens=256,
            purpose="routing",
            json_mode=True,
        )
        raw = llm_call_staged(
            gateway=gateway,
            request=request,
            model=model,
            log=run,
            user_id=user.pk,
            room_id=session.room_id,
            session_id=session.pk,
            billable=False,
        )
    result = routing_decision_parse(raw=raw, agents=agents)
    run.routing_used_fallback = result.used_fallback
    return result.agents


def _calls_run(
    *, user, session, claim: SessionClaim, text, agents, selected, priced, gateway, run: _Run
) -> None:
    next_index = claim.last_turn_index + 1
    budgets = {
        a.agent_key: Budget.for_model(context_window=m.context_window, max_output_tokens=m.max_output_tokens)
        for a in selected
        if (m := priced.get(a.model_alias))
    }
    ctx = session_context_load(
        session_id=session.pk,
        next_turn_index=next_index,
        summary_requested_through=claim.summary_due_through,
        max_history_tokens=max((b.tokens for b in budgets.values()), default=0),
    )
    names = {a.agent_key: f"{a.name} (@{a.agent_key})" for a in agents}
    prompts = {
        a.agent_key: system_prompt_build(
            agent_name=a.name,
            agent_key=a.agent_key,
            role_prompt=a.role_prompt,
            others=[n for k, n in names.items() if k != a.agent_key],
        )
        for a in selected
    }

    def plan_for(agent: Agent) -> ContextPlan:
        return context_prepare(
            system_prompt=prompts[agent.agent_key],
            session_context=ctx,
            user_input=text,
            same_turn_replies=[(a.name, reply) for a, reply, _ in run.replies],
            budget=budgets[agent.agent_key],
        )

    # Before any call: the input must fit every selected agent's budget, and the credits must cover it.
    estimate = Decimal(0)
    for agent in selected:
        if agent.agent_key not in budgets:
            continue
        plan = plan_for(agent)
        if plan.rejected:
            _rejection_audit_write(session=session, agent=agent, plan=plan)
            raise ContextBudgetExceeded(
                extra={
                    "budget_tokens": plan.budget.tokens,
                    "required_tokens": plan.tokens_after,
                    "agent_key": agent.agent_key,
                }
            )
        model = priced[agent.model_alias]
        estimate += charge_compute(
            input_tokens=plan.tokens_after,
            output_tokens=plan.budget.max_output_tokens,
            price=model.price,
            credits_per_usd=settings.CREDITS_PER_USD,
        ).credits
    balance = credit_balance_get(user_id=user.pk)
    if balance < estimate:
        raise InsufficientCredits(extra={"balance": str(balance), "required_credits": str(estimate)})

    for agent in selected:
        model = priced.get(agent.model_alias)
        if model is None:
            run.errors.append({"agent_key": agent.agent_key, "code": "model_unavailable"})
            continue
        plan = plan_for(agent)
        run.summary_triggered |= plan.summary_triggered
        run.audits.append(_audit_build(session=session, agent=agent, plan=plan))
        if plan.rejected:  # earlier replies of this turn pushed this agent over its budget
            run.errors.append({"agent_key": agent.agent_key, "code": "context_budget_exceeded"})
            continue
        request = LlmRequest(
            model_alias=model.alias,
            provider_model=model.provider_model,
            messages=plan.messages,
            max_output_tokens=plan.budget.max_output_tokens,
            agent_key=agent.agent_key,
            agent_name=agent.name,
        )
        reply = llm_call_staged(
            gateway=gateway,
            request=request,
            model=model,
            log=run,
            user_id=user.pk,
            room_id=session.room_id,
            session_id=session.pk,
            agent_key=agent.agent_key,
        )
        if reply is None:
            run.errors.append({"agent_key": agent.agent_key, "code": run.events[-1].error_code})
        else:
            run.replies.append((agent, reply.strip(), model.alias))


def _audit_build(*, session, agent: Agent, plan: ContextPlan) -> TurnContextAudit:
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


def _rejection_audit_write(*, session, agent: Agent, plan: ContextPlan) -> None:
    _audit_build(session=session, agent=agent, plan=plan).save()


def _turn_write(
    *, user, session: ChatSession, claim: SessionClaim, mode, text, key, fingerprint, run: _Run
) -> TurnOutcome:
    if not run.replies:
        status = Turn.Status.FAILED
    elif run.errors:
        status = Turn.Status.PARTIAL
    else:
        status = Turn.Status.COMPLETED
    output = "\n\n".join(f"{agent.name}: {reply}" for agent, reply, _ in run.replies)

    with transaction.atomic():
        locked = (
            ChatSession.objects.select_for_update()
            .only("claim_token", "last_turn_index", "summary_due_through")
            .get(pk=session.pk)
        )
        if locked.claim_token != claim.token:
            # Our claim expired and another turn took the session: this turn cannot be sequenced.
            raise TurnConflict()
        index = locked.last_turn_index + 1
        turn = Turn.objects.create(
            id=run.turn_id,
            session=session,
            turn_index=index,
            mode=mode,
            user_input=text,
            assistant_output=output,
            status=status,
            responding_agent_keys=[agent.agent_key for agent, _, _ in run.replies],
            agent_errors=run.errors,
            routing_used_fallback=run.routing_used_fallback,
            summary_triggered=run.summary_triggered and status != Turn.Status.FAILED,
            context_tokens=turn_context_tokens(user_input=text, assistant_output=output),
            idempotency_key=key,
            request_fingerprint=fingerprint,
        )
        messages = [
            Message(session=session, turn=turn, role=Message.Role.USER, mode=mode, content=text, order=0)
        ]
        messages += [
            Message(
                session=session,
                turn=turn,
                role=Message.Role.ASSISTANT,
                agent_key=agent.agent_key,
                agent_name=agent.name,
                model_alias=alias,
                mode=mode,
                content=reply,
                order=position,
            )
            for position, (agent, reply, alias) in enumerate(run.replies, start=1)
        ]
        Message.objects.bulk_create(messages)
        for audit in run.audits:
            audit.turn_id = turn.pk
        TurnContextAudit.objects.bulk_create(run.audits)
        usage_events_commit(user_id=user.pk, events=run.events, turn_id=turn.pk)
        due = locked.summary_due_through
        if turn.summary_triggered:
            due = max(due or 0, index)
            transaction.on_commit(
                partial(session_summary_enqueue, session_id=session.pk, through_index=index)
            )
        ChatSession.objects.filter(pk=session.pk).update(
            last_turn_index=index,
            claim_token=None,
            claim_expires_at=None,
            summary_due_through=due,
            updated_at=timezone.now(),
        )
    return TurnOutcome(turn=turn, messages=messages, events=run.events, llm_seconds=run.llm_seconds)
