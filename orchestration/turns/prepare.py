"""Before any call: every refusal (docs/transactions.md).

session, agents and catalog (404) → idempotent replay → the candidate agents (422) → a slot among the
user's turns in flight (429) → claim the session (409), with its history → replay again (a twin may
have committed while we waited) → the input fits every candidate's budget (422) → credit hold (402).
Three statements (``store.scope_load``, ``store.claim_and_context``, the hold). A refusal gives back
what it took.
"""

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from orchestration.capacity import process_slot_give_back, process_slot_take
from orchestration.context import Budget, ContextPlan, context_prepare, summary_trigger
from orchestration.errors import ContextBudgetExceeded, IdempotencyKeyReused, NoAgentSelected, TurnsInFlight
from orchestration.llm.registry import gateway_call_quiet_bound_seconds
from orchestration.llm.tokens import count_messages_tokens
from orchestration.modes import agents_select_manual, agents_select_roundtable
from orchestration.prompts import routing_prompt_build, system_prompt_build
from orchestration.services.summaries import summary_worst_case
from orchestration.turns import store
from orchestration.turns.costs import REPLY_FRAMING_TOKENS, ROUTING_MAX_OUTPUT_TOKENS, worst_charge
from orchestration.turns.discussion_plan import discussion_admit, discussion_worst_case
from orchestration.turns.errors import llm_unavailable, refusal_observe
from orchestration.turns.request import TurnRequest
from orchestration.turns.rows import audit_build
from orchestration.turns.state import AgentReply, Reservation, TurnOutcome, TurnPlan, TurnProgress, TurnUsage
from pantheon.db_connections import connection_release
from pantheon.errors import ApplicationError, NotFound
from pantheon.limits import slot_acquire, slot_release
from pantheon.logging import turn_log_context
from rooms.models import Agent
from sessions_app.models import Turn
from usage.models import CreditHold, LlmCallEvent
from usage.selectors import PricedModel
from usage.services.budgets import BudgetClaim
from usage.services.holds import HoldRequest, credit_hold_extend, credit_hold_place

logger = logging.getLogger(__name__)


def turn_prepare(request: TurnRequest) -> TurnProgress | TurnOutcome:
    """Everything a turn checks and reserves before its first LLM call. Returns the stored outcome
    when the request replays an ``Idempotency-Key``; raises ``ApplicationError`` on refusal. A
    returned ``TurnProgress`` holds a session claim, a credit hold and an in-flight slot, which
    ``turn_run`` gives back whatever happens."""
    started = time.perf_counter()
    try:
        scope = turn_scope_load(request)
        if scope.replay_turn_id is not None:
            return _replay(turn_id=scope.replay_turn_id, request=request)
        progress = TurnProgress(
            request=request,
            scope=scope,
            plan=TurnPlan(candidates=candidates_select(request=request, agents=scope.agents)),
            started=started,
        )
        if request.discussion is not None:
            discussion_admit(request.discussion, candidates=progress.plan.candidates, agents=scope.agents)
        with turn_log_context(progress.turn_id):
            slot_take(progress)
            try:
                return _claim_and_hold(progress)
            except BaseException:
                slot_give_back(progress.reserved)
                raise
    except ApplicationError as exc:
        refusal_observe(request=request, exc=exc, started=started)
        raise


def turn_scope_load(request: TurnRequest) -> store.TurnScope:
    try:
        session_id = uuid.UUID(str(request.session_id))
    except ValueError as exc:
        raise NotFound() from exc
    scope = store.scope_load(
        user_id=request.user.pk,
        session_id=session_id,
        idempotency_key=request.idempotency_key,
        aliases={settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS, settings.SUMMARY_MODEL_ALIAS},
    )
    if scope is None:
        raise NotFound()
    return scope


def _replay(*, turn_id: uuid.UUID, request: TurnRequest) -> TurnOutcome:
    """The stored result of an Idempotency-Key: the same body, or the stored refusal."""
    turn = Turn.objects.get(pk=turn_id)
    if turn.request_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused()
    if turn.status == Turn.Status.FAILED:
        raise llm_unavailable(turn)
    events = list(LlmCallEvent.objects.filter(turn_id=turn.pk).order_by("created_at", "id"))
    return TurnOutcome(
        turn=turn,
        messages=list(turn.messages.order_by("order")),
        events=events,
        usage=TurnUsage.of(events),
        replayed=True,
    )


def candidates_select(*, request: TurnRequest, agents: list[Agent]) -> list[Agent]:
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


def slot_take(progress: TurnProgress) -> None:
    """At most ``TURNS_IN_FLIGHT_PER_USER`` turns of a user run or wait at once: one user cannot tie
    up every web thread with turns queued on a busy session."""
    process_slot_take()  # this process's cap on turns in flight (orchestration/capacity.py): 503
    key = f"turns-in-flight:{progress.request.user.pk}"
    if not slot_acquire(key, limit=settings.TURNS_IN_FLIGHT_PER_USER, ttl_seconds=claim_ttl(progress.plan)):
        process_slot_give_back()
        raise TurnsInFlight(retry_after_seconds=settings.TURN_CONFLICT_RETRY_AFTER_SECONDS)
    progress.reserved.slot_key = key


def slot_give_back(reserved: Reservation) -> None:
    """Give the in-flight slot back, once: a second release would free another turn's slot."""
    key, reserved.slot_key = reserved.slot_key, ""
    if key:
        slot_release(key)
        process_slot_give_back()


def claim_ttl(plan: TurnPlan) -> float:
    """A claim outlives the turn's worst case (each call at its bound, routing included), so a
    turn never loses it while working; a dead worker's claim frees the session by itself."""
    calls = len(plan.candidates) + 1
    return gateway_call_quiet_bound_seconds() * calls + settings.TURN_CLAIM_MARGIN_SECONDS


def claim_renew_if_due(progress: TurnProgress, *, calls: int = 1) -> None:
    """Renew the session claim (and the hold, whose expiry follows it) when it nears its end, before
    ``calls`` more calls: a long streamed answer is bounded by its idle timeout, not by a wall clock,
    and a discussion by its steps, so either may outlive the TTL the turn started with. Free while the
    claim has time left (no query)."""
    reserved = progress.reserved
    margin = gateway_call_quiet_bound_seconds() * calls + 10
    if reserved.claim.expires_at - timezone.now() > timedelta(seconds=margin):
        return
    renewed = store.claim_extend(claim=reserved.claim, ttl_seconds=max(claim_ttl(progress.plan), margin))
    if renewed is not None:
        reserved.claim = renewed
        credit_hold_extend(hold=reserved.hold, expires_at=renewed.expires_at)
    connection_release()  # mid-stream: no connection kept through the rest of the call


def _claim_and_hold(progress: TurnProgress) -> TurnProgress | TurnOutcome:
    """Claim the session with its history, then check the budgets and place the hold; on a refusal
    (or a twin that committed meanwhile) the claim is given back."""
    request, plan, reserved = progress.request, progress.plan, progress.reserved
    plan.budgets = agent_budgets(plan.candidates, progress.scope.priced)
    max_history_tokens = max((b.tokens for b in plan.budgets.values()), default=0)
    claimed = store.claim_wait(
        lambda: store.claim_and_context(
            session_id=progress.session.pk,
            token=progress.turn_id,
            ttl_seconds=claim_ttl(plan),
            idempotency_key=request.idempotency_key,
            max_history_tokens=max_history_tokens,
        )
    )
    reserved.claim, plan.context = claimed.claim, claimed.context
    try:
        if claimed.replay_turn_id is not None:
            store.claim_release(claim=reserved.claim)
            slot_give_back(reserved)
            return _replay(turn_id=claimed.replay_turn_id, request=request)
        if request.after_claim is not None:
            request.after_claim(reserved.claim)
        budget_fit(progress)
        worst = hold_plan(progress)
        reserved.summary_share = worst.summary_share
        reserved.hold = credit_hold_place(hold=worst.hold, budgets=worst.budgets)
    except BaseException:
        store.claim_release(claim=reserved.claim)
        raise
    logger.info(
        "turn prepared session=%s mode=%s candidates=%s hold=%s",
        progress.session.pk,
        request.mode,
        [a.agent_key for a in plan.candidates],
        reserved.hold.amount,
    )
    return progress


def agent_budgets(candidates: list[Agent], priced: dict[str, PricedModel]) -> dict[str, Budget]:
    return {
        a.agent_key: Budget.for_agent(
            context_window_tokens=a.context_window_tokens,
            model_context_window=m.context_window,
            model_max_output_tokens=m.max_output_tokens,
            token_ratio=m.token_ratio,
        )
        for a in candidates
        if (m := priced.get(a.model_alias))
    }


def budget_fit(progress: TurnProgress, *, record: bool = True) -> None:
    """Check the bare input against every candidate's budget.

    Manual and roundtable: a candidate that cannot fit refuses the turn (422). Orchestrator: the
    manager is offered only the agents that fit; none → 422. ``record``: the refusal's audit is
    written (not by the cost preview, which writes nothing).
    """
    plan = progress.plan
    fitting: list[Agent] = []
    rejected: list[tuple[Agent, ContextPlan]] = []
    for agent in plan.candidates:
        # An agent without an active model is kept: it fails its call with model_unavailable.
        context = context_plan(progress, agent, replies=[]) if agent.agent_key in plan.budgets else None
        if context is not None and context.rejected:
            rejected.append((agent, context))
        else:
            fitting.append(agent)
            if context is not None:
                plan.bare_plans[agent.agent_key] = context
    orchestrated = progress.request.mode == Turn.Mode.ORCHESTRATOR
    if rejected and (not orchestrated or not fitting):
        agent, context = rejected[0]
        if record:
            audit_build(session=progress.session, agent=agent, plan=context).save()
        raise ContextBudgetExceeded(
            extra={
                "budget_tokens": context.budget.tokens,
                "required_tokens": context.tokens_after,
                "agent_key": agent.agent_key,
            }
        )
    plan.candidates = fitting


def context_plan(progress: TurnProgress, agent: Agent, *, replies: list[AgentReply]) -> ContextPlan:
    """What ``agent`` would see: its system prompt, the session's past within its budget, the input
    and the replies of this turn before it."""
    names = {a.agent_key: f"{a.name} (@{a.agent_key})" for a in progress.scope.agents}
    return context_prepare(
        system_prompt=system_prompt_build(
            agent_name=agent.name,
            agent_key=agent.agent_key,
            role_prompt=agent.role_prompt,
            others=[n for k, n in names.items() if k != agent.agent_key],
        ),
        session_context=progress.plan.context,
        user_input=progress.request.user_input,
        same_turn_replies=[(r.agent.name, r.content) for r in replies],
        budget=progress.plan.budgets[agent.agent_key],
    )


@dataclass(frozen=True)
class HoldPlan:
    """A turn's worst case: the hold, the summary's share of it (kept apart, moved into a hold of its
    own at the commit) and what it asks of the budgets (its amount by model alias); ``parts`` says
    what each agent and stage counts for (the cost preview shows them)."""

    hold: HoldRequest
    summary_share: HoldRequest | None
    budgets: BudgetClaim
    parts: list[dict] = field(default_factory=list)


def hold_plan(progress: TurnProgress) -> HoldPlan:
    """The turn's worst case at current prices: each candidate's planned input — the replies before
    it counted at their full output allowance, never above its budget, multiplied by its model's token
    calibration — plus its full output; the routing call's worst case; and the summary the turn may
    trigger. Each part's ``input_tokens`` is the calibrated count it is priced at. A discussion's
    worst case is its own (``discussion_worst_case``: every step at its worst, the manager's calls, up
    to its cap)."""
    plan, priced = progress.plan, progress.scope.priced
    credits = usd = Decimal(0)
    by_alias: dict[str, Decimal] = defaultdict(Decimal)
    parts: list[dict] = []
    main_alias = ""
    orchestrated = progress.request.mode == Turn.Mode.ORCHESTRATOR
    summary_possible = False
    if progress.request.discussion is not None:
        credits, usd, main_alias, summary_possible = discussion_worst_case(progress)
        by_alias[main_alias] += credits  # a model budget counts a discussion on its first speaker's model
        parts.append({"kind": "discussion", "model_alias": main_alias, "credits": credits})
    for position, agent in enumerate(plan.candidates if progress.request.discussion is None else ()):
        budget = plan.budgets.get(agent.agent_key)
        if budget is None:
            continue
        before = plan.candidates if orchestrated else plan.candidates[:position]
        replies = sum(
            plan.budgets[o.agent_key].max_output_tokens + REPLY_FRAMING_TOKENS
            for o in before
            if o is not agent and o.agent_key in plan.budgets
        )
        bare = plan.bare_plans[agent.agent_key]
        worst_input = min(bare.tokens_after + replies, budget.tokens)
        model = priced[agent.model_alias]
        charge = worst_charge(model, worst_input, budget.max_output_tokens)
        credits, usd = credits + charge.credits, usd + charge.cost_usd
        by_alias[agent.model_alias] += charge.credits
        parts.append(
            _part(
                "agent",
                agent.model_alias,
                model.input_calibrated(worst_input),
                budget.max_output_tokens,
                charge.credits,
            )
            | {"agent_key": agent.agent_key, "context_tokens": bare.tokens_after}
        )
        main_alias = main_alias or agent.model_alias
        summary_possible |= summary_trigger(
            session_context=plan.context,
            tokens_before=bare.tokens_before + replies,
            budget_tokens=budget.tokens,
        )
    manager = priced.get(settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS)
    if orchestrated and manager and progress.request.discussion is None:
        prompt = routing_prompt_build(agents=plan.candidates, user_input=progress.request.user_input)
        tokens = count_messages_tokens(m.content for m in prompt)
        charge = worst_charge(manager, tokens, ROUTING_MAX_OUTPUT_TOKENS)
        credits, usd = credits + charge.credits, usd + charge.cost_usd
        by_alias[manager.alias] += charge.credits
        parts.append(
            _part(
                "routing",
                manager.alias,
                manager.input_calibrated(tokens),
                ROUTING_MAX_OUTPUT_TOKENS,
                charge.credits,
            )
        )
    scope = progress.call_scope
    summary_share = None
    if summary_possible and (summary := summary_worst_case(priced=priced)):
        credits, usd = credits + summary.credits, usd + summary.cost_usd
        by_alias[settings.SUMMARY_MODEL_ALIAS] += summary.credits
        parts.append(
            {"kind": "summary", "model_alias": settings.SUMMARY_MODEL_ALIAS, "credits": summary.credits}
        )
        summary_share = HoldRequest(
            user_id=scope.user_id,
            kind=CreditHold.Kind.SUMMARY,
            amount=summary.credits,
            cost_usd=summary.cost_usd,
            model_alias=settings.SUMMARY_MODEL_ALIAS,
            room_id=scope.room_id,
            session_id=scope.session_id,
            expires_at=timezone.now(),  # set at commit, when the summary is asked for
        )
    hold = HoldRequest(
        user_id=scope.user_id,
        kind=CreditHold.Kind.TURN,
        amount=credits,
        cost_usd=usd,
        model_alias=main_alias,
        room_id=scope.room_id,
        session_id=scope.session_id,
        turn_id=progress.turn_id,
        expires_at=progress.claim.expires_at if progress.claim else timezone.now(),
    )
    budgets = BudgetClaim(
        room_id=scope.room_id,
        api_key_id=progress.request.api_key_id,
        parts=dict(by_alias),
        summary=summary_share.amount if summary_share else Decimal(0),
    )
    return HoldPlan(hold=hold, summary_share=summary_share, budgets=budgets, parts=parts)


def _part(kind: str, alias: str, input_tokens: int, output_tokens: int, credits: Decimal) -> dict:
    return {
        "kind": kind,
        "model_alias": alias,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "credits": credits,
    }
