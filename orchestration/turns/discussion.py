"""A discussion as the turn runs it (docs/discussions.md): ``discussion_speakers`` yields the next
speaker after every step until a stop condition holds, and the turn's agent loop
(``run._agents_answer``) makes each step's call, exactly as for any agent of a turn.

Before each step: the client is still there, no stop condition holds, someone may speak (rounds:
the next in order; orchestrator: the manager's choice, or the fallback), the step fits its agent's
context budget, and what the turn was charged so far plus the step's worst case stays within what
it holds (``until.max_credits`` or the hold itself). Each step is recorded on the turn with the
manager's decision as it came."""

import time
from collections.abc import Iterator
from decimal import Decimal

from django.conf import settings

from orchestration.discussions import (
    STOP_CLIENT_LEFT,
    STOP_CONTEXT,
    STOP_MANAGER_DONE,
    STOP_MAX_CREDITS,
    STOP_NO_SPEAKER,
    Decision,
    Discussion,
    decision_parse,
    stop_phrase_said,
    stop_reason_between_steps,
)
from orchestration.llm.gateway import LlmGateway, LlmRequest
from orchestration.llm.tokens import count_message_tokens
from orchestration.modes import agents_select_roundtable
from orchestration.prompts import discussion_prompt_build
from orchestration.services.calls import llm_call_staged
from orchestration.turns.costs import ROUTING_MAX_OUTPUT_TOKENS, worst_charge
from orchestration.turns.discussion_plan import (
    MANAGER_REPLY_CHARS,
    MANAGER_TRANSCRIPT_TOKENS,
    manager_worst_input,
)
from orchestration.turns.prepare import claim_renew_if_due, context_plan
from orchestration.turns.request import TurnEventSink
from orchestration.turns.rows import audit_build
from orchestration.turns.state import TurnProgress
from rooms.models import Agent
from sessions_app.models import Turn


def discussion_speakers(progress: TurnProgress, gateway: LlmGateway, emit: TurnEventSink) -> Iterator[Agent]:
    """The speakers of the discussion, one step at a time; sets ``work.stop_reason`` and
    ``work.discussion`` (the record) as it goes."""
    discussion: Discussion = progress.request.discussion
    work, candidates = progress.work, progress.plan.candidates
    steps: list[dict] = []
    work.discussion = {**discussion.as_dict(), "steps": steps}
    limit = discussion.steps(len(candidates))
    order = agents_select_roundtable(agents=candidates)
    orchestrated = progress.request.mode == Turn.Mode.ORCHESTRATOR
    allowance = _allowance(progress)
    started = time.monotonic()
    queue: list[Agent] = []
    decision: Decision | None = None
    decision_recorded = False
    last: Agent | None = None
    phrase_said = False

    def stop(reason: str) -> None:
        work.stop_reason = reason

    while True:
        if progress.cancelled.is_set():
            if not any(e["code"] == STOP_CLIENT_LEFT for e in work.errors):
                work.errors.append({"agent_key": "", "code": STOP_CLIENT_LEFT})
            return stop(STOP_CLIENT_LEFT)
        reason = stop_reason_between_steps(
            discussion,
            steps_done=len(steps),
            steps_limit=limit,
            candidates=len(candidates),
            phrase_said=phrase_said,
            seconds=time.monotonic() - started,
            billed=_billed(progress),
        )
        if reason:
            return stop(reason)
        chosen_by = "rounds"
        if not queue and orchestrated:
            if settings.DISCUSSION_BILL_MANAGER and _billed(progress) + _manager_worst(progress) > allowance:
                return stop(STOP_MAX_CREDITS)
            claim_renew_if_due(progress, calls=2)
            decision = _decide(progress, gateway, last=last)
            work.routing_used_fallback |= decision.used_fallback
            if decision.done:
                steps.append({"step": None, "decision": decision.record()})
                return stop(STOP_MANAGER_DONE)
            if not decision.agents:
                steps.append({"step": None, "decision": decision.record()})
                return stop(STOP_NO_SPEAKER)
            queue, decision_recorded = list(decision.agents), False
        if orchestrated:
            agent = queue.pop(0)
            chosen_by = "fallback" if decision.used_fallback else "manager"
        else:
            agent = order[len(steps) % len(order)]
        plan = context_plan(progress, agent, replies=work.replies)
        if plan.rejected:  # the discussion so far no longer fits this speaker's budget
            work.audits.append(audit_build(session=progress.session, agent=agent, plan=plan))
            return stop(STOP_CONTEXT)
        model = progress.scope.priced.get(agent.model_alias)
        worst = worst_charge(model, plan.tokens_after, plan.budget.max_output_tokens).credits if model else 0
        if _billed(progress) + worst > allowance:
            return stop(STOP_MAX_CREDITS)
        entry = {"step": len(steps) + 1, "agent_key": agent.agent_key, "chosen_by": chosen_by}
        if orchestrated and not decision_recorded:
            entry["decision"], decision_recorded = decision.record(), True  # on the first step it chose
        steps.append(entry)
        emit("discussion.step", {k: entry[k] for k in ("step", "agent_key", "chosen_by")})
        work.next_plan = plan
        replies, errors = len(work.replies), len(work.errors)
        yield agent
        work.next_plan = None
        if len(work.replies) > replies:
            entry["outcome"] = "replied"
            phrase_said |= stop_phrase_said(
                discussion, agent_key=agent.agent_key, reply=work.replies[-1].content
            )
        else:
            entry["outcome"] = work.errors[-1]["code"] if len(work.errors) > errors else "skipped"
        last = agent


def _allowance(progress: TurnProgress) -> Decimal:
    """What the discussion's billed calls may cost in all: its hold, less the summary's share (the
    hold is capped at ``until.max_credits`` already)."""
    reserved = progress.reserved
    share = reserved.summary_share.amount if reserved.summary_share is not None else Decimal(0)
    return reserved.hold.amount - share


def _billed(progress: TurnProgress) -> Decimal:
    return sum((e.credits_burned for e in progress.work.calls.events if e.billable), Decimal(0))


def _manager_worst(progress: TurnProgress) -> Decimal:
    manager = progress.scope.priced.get(settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS)
    if manager is None:
        return Decimal(0)
    return worst_charge(manager, manager_worst_input(progress), ROUTING_MAX_OUTPUT_TOKENS).credits


def _decide(progress: TurnProgress, gateway: LlmGateway, *, last: Agent | None) -> Decision:
    """Ask the manager who speaks next (a routing call: recorded, billed only when
    ``DISCUSSION_BILL_MANAGER``), and validate its answer."""
    discussion: Discussion = progress.request.discussion
    candidates = progress.plan.candidates
    eligible = [a.agent_key for a in candidates if discussion.allow_repeat or a != last]
    alias = settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS
    model = progress.scope.priced.get(alias)
    raw = None
    if model is not None:
        raw = llm_call_staged(
            gateway=gateway,
            request=LlmRequest(
                model_alias=alias,
                provider_model=model.provider_model,
                messages=discussion_prompt_build(
                    agents=candidates,
                    user_input=progress.request.user_input,
                    transcript=_transcript(progress),
                    eligible=eligible,
                    allow_repeat=discussion.allow_repeat,
                ),
                max_output_tokens=ROUTING_MAX_OUTPUT_TOKENS,
                purpose="routing",
                json_mode=True,
            ),
            model=model,
            log=progress.work.calls,
            scope=progress.call_scope,
            billable=settings.DISCUSSION_BILL_MANAGER,
        )
    return decision_parse(raw=raw, agents=candidates, last=last, allow_repeat=discussion.allow_repeat)


def _transcript(progress: TurnProgress) -> str:
    """The discussion's most recent replies, newest kept first, each cut to ``MANAGER_REPLY_CHARS``,
    within ``MANAGER_TRANSCRIPT_TOKENS``."""
    kept: list[str] = []
    total = 0
    for reply in reversed(progress.work.replies):
        text = (
            reply.content
            if len(reply.content) <= MANAGER_REPLY_CHARS
            else reply.content[:MANAGER_REPLY_CHARS] + "…"
        )
        line = f"{reply.agent.name} (@{reply.agent.agent_key}): {text}"
        tokens = count_message_tokens(line)
        if total + tokens > MANAGER_TRANSCRIPT_TOKENS:
            break
        kept.append(line)
        total += tokens
    return "\n".join(reversed(kept))
