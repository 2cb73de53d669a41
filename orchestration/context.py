"""The context budget of one agent call: summary trigger, pruning, rejection (docs/context-budget.md).

Pure functions: the caller loads the history once per turn, with its claim
(``orchestration.turns.store.claim_and_context``), and this module decides, per agent, what is sent
and records the figures for the ``TurnContextAudit``.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from orchestration.llm.gateway import ChatMessage
from orchestration.llm.tokens import TOKENS_PER_REPLY, count_message_tokens
from orchestration.prompts import anchor_message_build, summary_message_build
from usage.calibration import ONE, tokens_within_calibrated


@dataclass(frozen=True)
class HistoryTurn:
    turn_index: int
    user_input: str
    assistant_output: str
    tokens: int  # cached: message tokens of user_input + assistant_output


@dataclass(frozen=True)
class SessionContext:
    """Everything of the session's past a turn may show its agents, loaded once per turn."""

    summary_text: str | None
    summary_covers_through: int
    # Newest last. May omit the oldest turns that could never fit (they count as pruned).
    history: tuple[HistoryTurn, ...]
    history_total_tokens: int  # of every history turn after the summary, fetched or not
    history_total_count: int
    anchor_turn_index: int | None
    anchor_text: str | None
    next_turn_index: int
    # The highest index a summary was produced or requested for (a pending one counts).
    summary_requested_through: int = 0


@dataclass(frozen=True)
class Budget:
    context_window: int
    max_output_tokens: int
    # The model's token calibration (usage/calibration.py): its provider counts this many tokens for
    # each one counted here.
    token_ratio: Decimal = ONE

    @property
    def tokens(self) -> int:
        """What the input may take, in local counts (every count here is tiktoken's): the window less
        the output allowance, divided by the token ratio, rounded down — a local count fits exactly
        when, multiplied by the ratio and rounded up, it fits the window less the output."""
        room = max(self.context_window - self.max_output_tokens, 0)
        return tokens_within_calibrated(room, self.token_ratio)

    @classmethod
    def for_agent(
        cls,
        *,
        context_window_tokens: int | None,
        model_context_window: int,
        model_max_output_tokens: int,
        token_ratio: Decimal = ONE,
    ) -> "Budget":
        """The agent's window (its own ``context_window_tokens``, else ``CONTEXT_WINDOW_TOKENS``),
        never above its model's own or the operator's ceiling ``CONTEXT_WINDOW_MAX_TOKENS``; the
        output allowance is the model's, capped by ``CONTEXT_MAX_OUTPUT_TOKENS``; ``token_ratio``
        the model's token calibration."""
        window = context_window_tokens or settings.CONTEXT_WINDOW_TOKENS
        return cls(
            context_window=min(window, model_context_window, settings.CONTEXT_WINDOW_MAX_TOKENS),
            max_output_tokens=min(model_max_output_tokens, settings.CONTEXT_MAX_OUTPUT_TOKENS),
            token_ratio=token_ratio,
        )


@dataclass(frozen=True)
class ContextPlan:
    messages: tuple[ChatMessage, ...]
    budget: Budget
    tokens_before: int
    tokens_after: int
    summary_used: bool
    summary_triggered: bool
    pruned_turn_count: int
    pruned_through_turn_index: int | None
    rejected: bool
    kept_turn_indexes: tuple[int, ...] = field(default=())


def context_prepare(
    *,
    system_prompt: str,
    session_context: SessionContext,
    user_input: str,
    same_turn_replies: list[tuple[str, str]],
    budget: Budget,
) -> ContextPlan:
    """Apply the three steps of the budget to one agent call."""
    ctx = session_context
    limit = budget.tokens
    summary_msg = summary_message_build(ctx.summary_text) if ctx.summary_text else None
    reply_msgs = [f"{name}: {reply}" for name, reply in same_turn_replies]

    fixed = TOKENS_PER_REPLY + count_message_tokens(system_prompt) + count_message_tokens(user_input)
    fixed += sum(count_message_tokens(m) for m in reply_msgs)
    if summary_msg:
        fixed += count_message_tokens(summary_msg)
    anchor_tokens = count_message_tokens(anchor_message_build(ctx.anchor_text)) if ctx.anchor_text else 0

    fetched = list(ctx.history)
    fetched_indexes = {t.turn_index for t in fetched}
    # Turns the loader did not fetch are pruned already: they could not fit in any budget.
    fetched_tokens = sum(t.tokens for t in fetched)
    unfetched_tokens = ctx.history_total_tokens - fetched_tokens

    def anchor_kept(kept: list[HistoryTurn], start: int = 0) -> bool:
        # What is kept is always a suffix of the history, and the anchor is the history's oldest
        # turn: if the anchor is kept, it is the first one.
        return start < len(kept) and kept[start].turn_index == ctx.anchor_turn_index

    def total(kept: list[HistoryTurn], kept_tokens: int, start: int = 0) -> int:
        return fixed + kept_tokens + (0 if anchor_kept(kept, start) else anchor_tokens)

    anchor_in_all = ctx.anchor_turn_index in fetched_indexes or (
        ctx.anchor_turn_index is not None and ctx.anchor_turn_index > ctx.summary_covers_through
    )
    tokens_before = fixed + ctx.history_total_tokens + (0 if anchor_in_all else anchor_tokens)

    summary_triggered = summary_trigger(session_context=ctx, tokens_before=tokens_before, budget_tokens=limit)

    kept, kept_tokens = fetched, fetched_tokens
    prune_target = int(limit * settings.CONTEXT_PRUNE_TRIGGER_RATIO)
    if tokens_before > prune_target or unfetched_tokens:
        keep_recent = settings.CONTEXT_RECENT_TURNS_TO_KEEP
        start = 0
        # 1. Drop the oldest turns outside the recent ones until under the prune ratio.
        while len(kept) - start > keep_recent and total(kept, kept_tokens, start) > prune_target:
            kept_tokens -= kept[start].tokens
            start += 1
        # 2. The recent turns are kept when they fit the budget; otherwise they go too, oldest first.
        while start < len(kept) and total(kept, kept_tokens, start) > limit:
            kept_tokens -= kept[start].tokens
            start += 1
        kept = kept[start:]

    tokens_after = total(kept, kept_tokens)
    pruned_count = ctx.history_total_count - len(kept)
    pruned_through = None
    if pruned_count:
        pruned_through = (kept[0].turn_index - 1) if kept else ctx.next_turn_index - 1
    rejected = tokens_after > limit

    messages: list[ChatMessage] = [ChatMessage("system", system_prompt)]
    if summary_msg:
        messages.append(ChatMessage("system", summary_msg))
    if ctx.anchor_text and not anchor_kept(kept):
        messages.append(ChatMessage("user", anchor_message_build(ctx.anchor_text)))
    for t in kept:
        messages.append(ChatMessage("user", t.user_input))
        if t.assistant_output:
            messages.append(ChatMessage("assistant", t.assistant_output))
    messages.append(ChatMessage("user", user_input))
    messages.extend(ChatMessage("assistant", m) for m in reply_msgs)

    return ContextPlan(
        messages=tuple(messages),
        budget=budget,
        tokens_before=tokens_before,
        tokens_after=tokens_after,
        summary_used=bool(summary_msg),
        summary_triggered=summary_triggered,
        pruned_turn_count=pruned_count,
        pruned_through_turn_index=pruned_through,
        rejected=rejected,
        kept_turn_indexes=tuple(t.turn_index for t in kept),
    )


def summary_trigger(*, session_context: SessionContext, tokens_before: int, budget_tokens: int) -> bool:
    """Whether this call marks a summary due (docs/context-budget.md, "Summary trigger"):

    - every ``CONTEXT_MANDATORY_SUMMARY_TURN``-th turn since the last summary made or asked for;
    - or when the context reaches ``CONTEXT_SUMMARY_TRIGGER_RATIO`` of the budget *and* the turns a
      new summary would replace — those after the latest summary made or asked for, less the anchor's
      input, which stays in every context — hold at least ``CONTEXT_SUMMARY_MIN_HISTORY_RATIO`` of the
      budget. A large anchor or a large input alone never asks for a summary: it could not shrink them.
    """
    ctx = session_context
    through = max(ctx.summary_covers_through, ctx.summary_requested_through)
    if ctx.next_turn_index - through >= settings.CONTEXT_MANDATORY_SUMMARY_TURN:
        return True
    if tokens_before < budget_tokens * settings.CONTEXT_SUMMARY_TRIGGER_RATIO:
        return False
    if through > ctx.summary_covers_through:  # a summary is on its way: only the turns after it count
        summarizable = sum(t.tokens for t in ctx.history if t.turn_index > through)
    else:
        summarizable = ctx.history_total_tokens
    if ctx.anchor_text and ctx.anchor_turn_index is not None and ctx.anchor_turn_index > through:
        summarizable -= count_message_tokens(ctx.anchor_text)
    return summarizable >= budget_tokens * settings.CONTEXT_SUMMARY_MIN_HISTORY_RATIO


def turn_context_tokens(*, user_input: str, assistant_output: str) -> int:
    """What a committed turn will cost in later contexts (cached on the turn)."""
    return count_message_tokens(user_input) + (
        count_message_tokens(assistant_output) if assistant_output else 0
    )
