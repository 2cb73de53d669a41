"""The paid part of a turn: routing (orchestrator) → each agent's call, seeing the replies before it
(streamed to ``on_event`` when asked) → one commit statement (``store.turn_write``). Any failure goes
through ``_turn_abandon`` (orphaned usage written, hold and claim released) — the one place a failed
turn cleans up."""

import logging
import time
from dataclasses import replace
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestration.errors import LlmUnavailable, TurnConflict, TurnWriteFailed
from orchestration.llm.gateway import LlmGateway, LlmRequest
from orchestration.llm.registry import gateway_get
from orchestration.modes import routing_decision_parse
from orchestration.prompts import routing_prompt_build
from orchestration.services.calls import llm_call_staged
from orchestration.services.summaries import summary_enqueue
from orchestration.turns import store
from orchestration.turns.costs import ROUTING_MAX_OUTPUT_TOKENS
from orchestration.turns.discussion import discussion_speakers
from orchestration.turns.errors import llm_unavailable, refusal_observe
from orchestration.turns.prepare import claim_renew_if_due, context_plan, slot_give_back
from orchestration.turns.request import TurnEventSink
from orchestration.turns.rows import audit_build, turn_rows_build
from orchestration.turns.state import AgentReply, TurnOutcome, TurnProgress, TurnUsage
from pantheon.errors import ApplicationError
from pantheon.logging import turn_log_context
from pantheon.observability import TurnObserved, observe
from sessions_app.models import Turn
from usage.models import CreditHold, CreditLedgerEntry
from usage.services.budgets import budget_warnings_raise
from usage.services.events import usage_events_write_orphaned
from usage.services.holds import credit_hold_release, summary_hold_expiry
from usage.tasks import budget_webhook_enqueue

logger = logging.getLogger(__name__)


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
                    "agent_keys": [a.agent_key for a in progress.work.selected],
                },
            )
            _agents_answer(progress, gateway, on_event)
            outcome = _turn_commit(progress)
    except BaseException as exc:
        _turn_abandon(progress, exc)
        if isinstance(exc, ApplicationError):
            refusal_observe(request=progress.request, exc=exc, started=progress.started)
            raise
        if isinstance(exc, Exception):
            raise TurnWriteFailed() from exc
        raise
    finally:
        slot_give_back(progress.reserved)
    _turn_observe(progress, outcome, streamed=on_event is not None)
    outcome.budget_warnings = _budget_warnings(progress)
    if outcome.turn.status == Turn.Status.FAILED:
        raise llm_unavailable(outcome.turn)
    return outcome


def _ignore(name: str, data: dict) -> None:
    return None


def _route(progress: TurnProgress, gateway: LlmGateway) -> None:
    """Orchestrator: ask the manager model (its call is recorded as a non-billable usage event).
    Manual and roundtable: every candidate answers, in order."""
    work, candidates = progress.work, progress.plan.candidates
    if progress.request.mode != Turn.Mode.ORCHESTRATOR or progress.request.discussion is not None:
        work.selected = list(candidates)  # a discussion's manager picks at each step
        return
    alias = settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS
    model = progress.scope.priced.get(alias)
    raw = None
    if model is None:
        logger.error("manager model %r is not an active catalog model; routing falls back", alias)
    else:
        request = LlmRequest(
            model_alias=alias,
            provider_model=model.provider_model,
            messages=routing_prompt_build(agents=candidates, user_input=progress.request.user_input),
            max_output_tokens=ROUTING_MAX_OUTPUT_TOKENS,
            purpose="routing",
            json_mode=True,
        )
        raw = llm_call_staged(
            gateway=gateway,
            request=request,
            model=model,
            log=work.calls,
            scope=progress.call_scope,
            billable=False,
        )
    result = routing_decision_parse(raw=raw, agents=candidates)
    work.routing_used_fallback = result.used_fallback
    work.selected = result.agents


def _agents_answer(progress: TurnProgress, gateway: LlmGateway, on_event: TurnEventSink | None) -> None:
    """One call per selected agent, in order, each seeing the replies before it. A failed call does
    not stop the turn; a cancelled turn (its client left) calls no further agent."""
    emit = on_event or _ignore
    work = progress.work

    def failed(agent, code: str) -> None:
        work.errors.append({"agent_key": agent.agent_key, "code": code})
        emit("agent.failed", {"agent_key": agent.agent_key, "code": code})

    speakers = discussion_speakers(progress, gateway, emit) if progress.request.discussion else work.selected
    for agent in speakers:
        if progress.cancelled.is_set():
            work.errors.append({"agent_key": agent.agent_key, "code": progress.cancel_code})
            continue
        model = progress.scope.priced.get(agent.model_alias)
        if model is None:
            failed(agent, "model_unavailable")
            continue
        # The first agent sees no reply of this turn: its context is the one the budget check built;
        # a discussion plans each step's before choosing it.
        plan, work.next_plan = work.next_plan, None
        plan = plan or (progress.plan.bare_plans.get(agent.agent_key) if not work.replies else None)
        plan = plan or context_plan(progress, agent, replies=work.replies)
        work.summary_triggered |= plan.summary_triggered
        work.audits.append(audit_build(session=progress.session, agent=agent, plan=plan))
        if plan.rejected:  # the replies before it pushed this agent over its budget
            failed(agent, "context_budget_exceeded")
            continue
        claim_renew_if_due(progress)
        emit(
            "agent.started",
            {"agent_key": agent.agent_key, "agent_name": agent.name, "model_alias": model.alias},
        )
        on_delta = None
        if on_event is not None:

            def on_delta(text: str, key: str = agent.agent_key) -> None:
                emit("agent.delta", {"agent_key": key, "text": text})
                claim_renew_if_due(progress)

        reply = llm_call_staged(
            gateway=gateway,
            request=LlmRequest(
                model_alias=model.alias,
                provider_model=model.provider_model,
                messages=plan.messages,
                max_output_tokens=plan.budget.max_output_tokens,
                agent_key=agent.agent_key,
                agent_name=agent.name,
                local_input_tokens=plan.tokens_after,
            ),
            model=model,
            log=work.calls,
            scope=progress.call_scope,
            on_delta=on_delta,
        )
        event = work.calls.events[-1]
        if reply is None:
            failed(agent, event.error_code)
            continue
        work.replies.append(AgentReply(agent=agent, content=reply, model_alias=model.alias))
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


def _turn_commit(progress: TurnProgress) -> TurnOutcome:
    """The turn, its messages, audits and usage events, the hold's settlement and ledger entry, and
    the claim's release: one statement. The summary, when due, is enqueued after it."""
    request, reserved, work = progress.request, progress.reserved, progress.work
    turn, messages = turn_rows_build(
        request=request, session=progress.session, turn_id=progress.turn_id, work=work
    )
    user_id, events = request.user.pk, work.calls.events
    for event in events:
        event.turn_id = turn.pk
    share = reserved.summary_share if turn.summary_triggered else None
    written = store.turn_write(
        turn=turn,
        claimed_last_index=reserved.claim.last_turn_index,
        messages=messages,
        audits=work.audits,
        events=events,
        hold_id=reserved.hold.pk,
        # Their money (the debit, what stays held for the summary) is settled by the statement itself.
        ledger=CreditLedgerEntry(
            user_id=user_id,
            kind=CreditLedgerEntry.Kind.TURN_DEBIT,
            amount=0,
            balance_after=0,
            turn_id=turn.pk,
        ),
        summary_hold=(
            CreditHold(**replace(share, expires_at=summary_hold_expiry()).__dict__)
            if share is not None
            else CreditHold(
                user_id=user_id, kind=CreditHold.Kind.SUMMARY, amount=Decimal(0), expires_at=timezone.now()
            )
        ),
        now=timezone.now(),
    )
    if written is None:
        raise TurnConflict()  # the claim was lost (another turn took the session after it expired)
    work.committed = True
    turn.turn_index = written.turn_index
    if written.debited < sum(e.credits_burned + e.credits_unbilled for e in events if e.billable):
        logger.error(
            "usage beyond the hold: turn %s cost more than it held; the rest is unbilled "
            "(provider_overshoot)",
            turn.pk,
        )
    if turn.summary_triggered:
        transaction.on_commit(
            partial(summary_enqueue, session_id=turn.session_id, through_index=turn.turn_index)
        )
    logger.info("turn committed index=%s status=%s", turn.turn_index, turn.status)
    return TurnOutcome(
        turn=turn,
        messages=messages,
        events=events,
        usage=TurnUsage.of(events),
        llm_seconds=work.calls.llm_seconds,
    )


def _budget_warnings(progress: TurnProgress) -> list[dict]:
    """The soft-limit warnings this turn raised; only a turn that answered to budgets looks (a user
    without budgets pays no query). Never raises: the turn is committed and paid for."""
    if not progress.reserved.hold.budget_shares:
        return []
    try:
        warned = budget_warnings_raise(
            user_id=progress.request.user.pk,
            room_id=progress.session.room_id,
            api_key_id=progress.request.api_key_id,
        )
        for status in warned:
            budget_webhook_enqueue(status)
        return [s.as_dict() for s in warned]
    except Exception:
        logger.exception("could not check the budgets' soft limits after turn %s", progress.turn_id)
        return []


def _turn_abandon(progress: TurnProgress, exc: BaseException) -> None:
    """The one clean-up of a turn that will not commit: its calls' usage is written alone (the
    provider charged for them), its hold and its claim are given back. Never raises."""
    work, reserved = progress.work, progress.reserved
    if work.committed:  # a failure after the commit: the turn and its usage are written already
        logger.exception("turn failed after its commit: %s", type(exc).__name__)
        return
    if not isinstance(exc, ApplicationError):
        logger.error(
            "turn failed before commit after %d LLM calls: %s: %s",
            len(work.calls.events),
            type(exc).__name__,
            str(exc)[:300],
        )
    usage_events_write_orphaned(events=work.calls.events)
    for release in (
        partial(credit_hold_release, hold=reserved.hold),
        partial(store.claim_release, claim=reserved.claim),
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
            # A failed turn answers 502 llm_unavailable (a partial one 201): its log line says so.
            code=LlmUnavailable.code if outcome.turn.status == Turn.Status.FAILED else "",
            llm_seconds=outcome.llm_seconds,
            total_seconds=time.perf_counter() - progress.started,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
            credits_burned=usage.credits_burned,
            streamed=streamed,
        )
    )
