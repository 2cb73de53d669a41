"""Before a discussion's first call (docs/discussions.md, "Money"): whether it may run at all, and
its worst case, which the turn's hold covers so that a discussion can never overdraw.

The worst case is every step at its worst — the dearest candidate, its planned input grown by the
full output of every step before it (never above its budget), plus its full output — and, in
orchestrator mode, the manager's call before each step at its largest prompt."""

from decimal import Decimal

from django.conf import settings

from orchestration.context import summary_trigger
from orchestration.discussions import STEPS_LIMIT, Discussion
from orchestration.errors import DiscussionCapTooLow, DiscussionTooLong, InvalidInput
from orchestration.llm.tokens import count_messages_tokens
from orchestration.prompts import discussion_prompt_build
from orchestration.turns.costs import REPLY_FRAMING_TOKENS, ROUTING_MAX_OUTPUT_TOKENS, worst_charge
from orchestration.turns.state import TurnProgress
from rooms.models import Agent
from sessions_app.models import Turn

# The manager sees the discussion's most recent replies, each cut to this many characters, within
# this many tokens.
MANAGER_REPLY_CHARS = 400
MANAGER_TRANSCRIPT_TOKENS = 2048


def discussion_admit(discussion: Discussion, *, candidates: list[Agent], agents: list[Agent]) -> None:
    """Refuse, before anything is reserved, a discussion that may run too long: beyond
    ``STEPS_LIMIT`` steps, or beyond ``DISCUSSION_MAX_STEPS`` without a credit cap (422); a
    ``stop_agent`` not of the room is a 400."""
    if discussion.stop_agent and discussion.stop_agent not in {a.agent_key for a in agents}:
        raise InvalidInput.for_field("discussion.until.stop_agent", "not an agent of this room.")
    steps = discussion.steps(len(candidates))
    ceiling = STEPS_LIMIT if discussion.max_credits is not None else settings.DISCUSSION_MAX_STEPS
    if steps > ceiling:
        raise DiscussionTooLong(
            f"This discussion may run {steps} steps; without until.max_credits at most "
            f"{settings.DISCUSSION_MAX_STEPS}, with it at most {STEPS_LIMIT}.",
            extra={"steps": steps, "max_steps": ceiling},
        )


def manager_worst_input(progress: TurnProgress) -> int:
    """The largest prompt the manager may be sent: its instructions, the input, a full transcript."""
    candidates = progress.plan.candidates
    prompt = discussion_prompt_build(
        agents=candidates,
        user_input=progress.request.user_input,
        transcript="",
        eligible=[a.agent_key for a in candidates],
        allow_repeat=True,
    )
    return count_messages_tokens(m.content for m in prompt) + MANAGER_TRANSCRIPT_TOKENS + REPLY_FRAMING_TOKENS


def discussion_worst_case(progress: TurnProgress) -> tuple[Decimal, Decimal, str, bool]:
    """(credits, USD, the first candidate's alias, whether a summary may be triggered), capped at
    ``until.max_credits``. Raises ``DiscussionCapTooLow`` (422) when the cap cannot pay one step."""
    discussion: Discussion = progress.request.discussion
    plan, priced = progress.plan, progress.scope.priced
    fitting = [a for a in plan.candidates if a.agent_key in plan.budgets]
    steps = discussion.steps(len(plan.candidates))
    reply = (
        max((plan.budgets[a.agent_key].max_output_tokens for a in fitting), default=0) + REPLY_FRAMING_TOKENS
    )
    manager = priced.get(settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS)
    orchestrated = progress.request.mode == Turn.Mode.ORCHESTRATOR
    routing = (
        worst_charge(manager, manager_worst_input(progress), ROUTING_MAX_OUTPUT_TOKENS)
        if (orchestrated and manager)
        else None
    )
    credits = usd = Decimal(0)
    first_step = None
    for k in range(steps):
        step = max(
            (
                worst_charge(
                    priced[a.model_alias],
                    min(
                        plan.bare_plans[a.agent_key].tokens_after + k * reply,
                        plan.budgets[a.agent_key].tokens,
                    ),
                    plan.budgets[a.agent_key].max_output_tokens,
                )
                for a in fitting
            ),
            key=lambda c: c.credits,
            default=None,
        )
        for charge in (step, routing):
            if charge is not None:
                credits, usd = credits + charge.credits, usd + charge.cost_usd
        first_step = credits if first_step is None else first_step
    summary_possible = any(
        summary_trigger(
            session_context=plan.context,
            tokens_before=plan.bare_plans[a.agent_key].tokens_before + (steps - 1) * reply,
            budget_tokens=plan.budgets[a.agent_key].tokens,
        )
        for a in fitting
    )
    main_alias = fitting[0].model_alias if fitting else ""
    cap = discussion.max_credits
    if cap is not None and credits > cap:
        needed = (first_step or Decimal(0)) - (
            Decimal(0) if settings.DISCUSSION_BILL_MANAGER or routing is None else routing.credits
        )
        if cap < needed:
            raise DiscussionCapTooLow(
                extra={"max_credits": str(cap), "first_step_credits": str(needed)},
            )
        usd, credits = usd * cap / credits, cap
    return credits, usd, main_alias, summary_possible
