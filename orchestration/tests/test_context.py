"""The three budget steps on hand-built histories (no database)."""

from dataclasses import replace

import pytest

from orchestration.context import (
    Budget,
    HistoryTurn,
    SessionContext,
    context_prepare,
    turn_context_tokens,
)
from orchestration.llm.tokens import count_message_tokens, count_messages_tokens, count_text_tokens
from orchestration.prompts import anchor_message_build, summary_message_build

SYSTEM = "You are Writer (@writer)."


def _turn(i: int, words: int = 40) -> HistoryTurn:
    user, reply = f"question {i} " + "alpha " * words, f"Writer: answer {i} " + "beta " * words
    return HistoryTurn(i, user, reply, turn_context_tokens(user_input=user, assistant_output=reply))


def _ctx(history, *, summary=None, covered=0, anchor=True, next_index=None) -> SessionContext:
    history = tuple(history)
    first = history[0] if history else None
    return SessionContext(
        summary_text=summary,
        summary_covers_through=covered,
        history=history,
        history_total_tokens=sum(t.tokens for t in history),
        history_total_count=len(history),
        anchor_turn_index=first.turn_index if (first and anchor) else None,
        anchor_text=first.user_input if (first and anchor) else None,
        next_turn_index=next_index or (len(history) + covered + 1),
    )


def test_small_context_is_sent_whole_and_counts_exactly():
    history = [_turn(1), _turn(2)]
    plan = context_prepare(
        system_prompt=SYSTEM,
        session_context=_ctx(history),
        user_input="hello",
        same_turn_replies=[],
        budget=Budget(8192, 2048),
    )
    contents = [m.content for m in plan.messages]
    assert contents == [
        SYSTEM,
        history[0].user_input,
        history[0].assistant_output,
        history[1].user_input,
        history[1].assistant_output,
        "hello",
    ]
    assert plan.tokens_before == plan.tokens_after == count_messages_tokens(contents)
    assert not plan.rejected and plan.pruned_turn_count == 0 and not plan.summary_triggered


def test_prune_drops_oldest_keeps_anchor_and_last_four(settings):
    history = [_turn(i) for i in range(1, 21)]
    budget = Budget(2600, 600)  # 2000 tokens: ~20 turns of ~90 tokens do not fit under 90 %
    plan = context_prepare(
        system_prompt=SYSTEM,
        session_context=_ctx(history),
        user_input="now?",
        same_turn_replies=[],
        budget=budget,
    )
    assert plan.tokens_before > budget.tokens * settings.CONTEXT_PRUNE_TRIGGER_RATIO
    assert plan.tokens_after <= budget.tokens * settings.CONTEXT_PRUNE_TRIGGER_RATIO
    assert plan.kept_turn_indexes[-4:] == (17, 18, 19, 20)
    assert plan.kept_turn_indexes == tuple(range(plan.kept_turn_indexes[0], 21))  # oldest went first
    assert plan.pruned_turn_count == 20 - len(plan.kept_turn_indexes)
    assert plan.pruned_through_turn_index == plan.kept_turn_indexes[0] - 1
    # The anchor (turn 1's user message) is still there although turn 1 was pruned.
    assert any(history[0].user_input in m.content for m in plan.messages)
    assert plan.messages[-1].content == "now?"
    assert plan.tokens_after == count_messages_tokens(m.content for m in plan.messages)
    assert plan.summary_triggered  # above 70 % before pruning


def test_recent_turns_go_only_when_they_do_not_fit(settings):
    history = [_turn(i, words=300) for i in range(1, 6)]  # ~600 tokens each
    budget = Budget(2600, 600)
    plan = context_prepare(
        system_prompt=SYSTEM,
        session_context=_ctx(history, anchor=False),
        user_input="x",
        same_turn_replies=[],
        budget=budget,
    )
    assert not plan.rejected
    assert plan.tokens_after <= budget.tokens
    assert plan.kept_turn_indexes and plan.kept_turn_indexes[-1] == 5
    assert len(plan.kept_turn_indexes) < 4


def test_input_that_cannot_fit_is_rejected_with_figures():
    plan = context_prepare(
        system_prompt=SYSTEM,
        session_context=_ctx([_turn(1)]),
        user_input="lorem ipsum " * 5000,
        same_turn_replies=[],
        budget=Budget(8192, 2048),
    )
    assert plan.rejected
    assert plan.tokens_after > plan.budget.tokens == 6144


def test_summary_is_used_and_mandatory_trigger_every_eighth_turn(settings):
    ctx = _ctx([_turn(9)], summary="They agreed on a plan.", covered=8, next_index=16)
    plan = context_prepare(
        system_prompt=SYSTEM,
        session_context=ctx,
        user_input="hi",
        same_turn_replies=[],
        budget=Budget(8192, 2048),
    )
    assert (
        plan.summary_used
        and plan.messages[1].role == "system"
        and "agreed on a plan" in plan.messages[1].content
    )
    assert plan.summary_triggered  # 16 - 8 = 8 turns since the summary
    ctx7 = _ctx([_turn(9)], summary="s", covered=8, next_index=15)
    plan7 = context_prepare(
        system_prompt=SYSTEM,
        session_context=ctx7,
        user_input="hi",
        same_turn_replies=[],
        budget=Budget(8192, 2048),
    )
    assert not plan7.summary_triggered


# Exact figures. A budget of 1,000 tokens makes the ratios read plainly: the summary trigger is at
# 700 tokens (70 %), pruning starts above 900 (90 %), and anything above 1,000 is rejected.
BUDGET_1000 = Budget(3000, 2000)
UNLIMITED = Budget(10**7, 0)
SUMMARY = "The keeper and the writer agreed the storm ends the story."
ANCHOR = "Q1 Tell me a story about a lighthouse keeper."


def _text(tokens: int, label: str) -> str:
    """A text of exactly ``tokens`` tokens that starts with ``label``."""
    text = label + " a" * (tokens - count_text_tokens(label))
    assert count_text_tokens(text) == tokens
    return text


def _sized_turn(i: int, tokens: int) -> HistoryTurn:
    """A history turn whose question and reply cost ``tokens`` in a context."""
    asked = (tokens - 8) // 2
    user, reply = _text(asked, f"Q{i}"), _text(tokens - 8 - asked, f"Writer: R{i}")
    turn = HistoryTurn(i, user, reply, turn_context_tokens(user_input=user, assistant_output=reply))
    assert turn.tokens == tokens
    return turn


def _summarized(turns: list[HistoryTurn], *, covered: int = 1) -> SessionContext:
    """A session whose summary covers its first turns, the anchor (turn 1) among them."""
    return SessionContext(
        summary_text=SUMMARY,
        summary_covers_through=covered,
        history=tuple(turns),
        history_total_tokens=sum(t.tokens for t in turns),
        history_total_count=len(turns),
        anchor_turn_index=1,
        anchor_text=ANCHOR,
        next_turn_index=turns[-1].turn_index + 1 if turns else covered + 1,
    )


def _plan(ctx: SessionContext, user_input: str, budget: Budget = BUDGET_1000, replies=()):
    return context_prepare(
        system_prompt=SYSTEM,
        session_context=ctx,
        user_input=user_input,
        same_turn_replies=list(replies),
        budget=budget,
    )


def _input_for(ctx: SessionContext, tokens_before: int, replies=()) -> str:
    """The user input that brings the whole context to exactly ``tokens_before`` tokens."""
    short = "go on"
    base = _plan(ctx, short, UNLIMITED, replies).tokens_before
    assert base <= tokens_before, "the history alone is already larger"
    return _text(count_text_tokens(short) + tokens_before - base, short)


def _sent(plan) -> int:
    return count_messages_tokens(m.content for m in plan.messages)


@pytest.mark.parametrize(("tokens_before", "triggered"), [(700, True), (699, False)])
def test_summary_is_triggered_from_exactly_seventy_percent_of_the_budget(tokens_before, triggered):
    ctx = _ctx([_sized_turn(i, 100) for i in (1, 2, 3, 4)])  # 400 tokens of history: worth a summary
    plan = _plan(ctx, _input_for(ctx, tokens_before))
    assert plan.tokens_before == tokens_before
    assert plan.summary_triggered is triggered
    assert plan.pruned_turn_count == 0 and not plan.rejected


@pytest.mark.parametrize(("next_index", "triggered"), [(7, False), (8, True)])
def test_eighth_turn_of_a_session_without_summary_triggers_one(next_index, triggered):
    ctx = _ctx([_turn(i, words=5) for i in range(1, next_index)])
    assert ctx.summary_requested_through == 0  # none requested yet
    plan = _plan(ctx, "and then?", Budget(8192, 2048))
    assert plan.tokens_before < 0.7 * plan.budget.tokens  # only the turn count can trigger it
    assert plan.summary_triggered is triggered


@pytest.mark.parametrize(("next_index", "triggered"), [(15, False), (16, True)])
def test_a_pending_summary_request_restarts_the_eighth_turn_count(next_index, triggered):
    history = tuple(_turn(i, words=5) for i in range(1, next_index))
    ctx = replace(_ctx(history), summary_requested_through=8)  # requested at turn 8, not made yet
    plan = _plan(ctx, "and then?", Budget(8192, 2048))
    assert plan.tokens_before < 0.7 * plan.budget.tokens
    assert plan.summary_triggered is triggered


@pytest.mark.parametrize(("tokens_before", "kept_from"), [(900, 2), (901, 3)])
def test_pruning_starts_only_above_ninety_percent(tokens_before, kept_from):
    ctx = _summarized([_sized_turn(i, 100) for i in range(2, 10)])
    plan = _plan(ctx, _input_for(ctx, tokens_before))
    assert plan.tokens_before == tokens_before
    assert plan.kept_turn_indexes == tuple(range(kept_from, 10))
    assert plan.pruned_turn_count == kept_from - 2
    assert plan.tokens_after == _sent(plan) == tokens_before - 100 * (kept_from - 2)


def test_pruning_drops_one_turn_at_a_time_and_stops_at_ninety_percent():
    ctx = _summarized([_sized_turn(i, 100) for i in range(2, 10)])
    plan = _plan(ctx, _input_for(ctx, 1100))  # two turns of 100 too many
    assert plan.kept_turn_indexes == (4, 5, 6, 7, 8, 9)
    assert plan.pruned_turn_count == 2 and plan.pruned_through_turn_index == 3
    assert plan.tokens_after == _sent(plan) == 900
    assert not plan.rejected


def test_last_four_turns_are_kept_above_ninety_percent_while_they_fit_the_budget():
    ctx = _summarized([_sized_turn(i, 200) for i in range(2, 8)])
    plan = _plan(ctx, _input_for(ctx, 150 + 6 * 200))  # the last four alone: 950 tokens
    assert plan.kept_turn_indexes == (4, 5, 6, 7)
    assert plan.tokens_after == _sent(plan) == 950
    assert plan.pruned_turn_count == 2 and plan.pruned_through_turn_index == 3
    assert not plan.rejected


def test_recent_turns_are_dropped_oldest_first_only_until_the_context_fits():
    ctx = _summarized([_sized_turn(i, 250) for i in range(2, 6)])
    plan = _plan(ctx, _input_for(ctx, 250 + 4 * 250))  # one recent turn too many
    assert plan.kept_turn_indexes == (3, 4, 5)
    assert plan.tokens_after == _sent(plan) == plan.budget.tokens == 1000  # exactly full is fine
    assert plan.pruned_turn_count == 1 and plan.pruned_through_turn_index == 2
    assert not plan.rejected


def test_history_that_cannot_fit_at_all_is_pruned_through_the_previous_turn():
    ctx = _summarized([_sized_turn(i, 600) for i in (2, 3)])
    plan = _plan(ctx, _input_for(ctx, 500 + 2 * 600))
    assert plan.kept_turn_indexes == ()
    assert plan.pruned_turn_count == 2
    assert plan.pruned_through_turn_index == ctx.next_turn_index - 1 == 3
    contents = [m.content for m in plan.messages]
    assert contents[2:] == [anchor_message_build(ANCHOR), contents[-1]]  # anchor, then the input
    assert plan.tokens_after == _sent(plan) == 500 and not plan.rejected


@pytest.mark.parametrize(("tokens", "rejected"), [(1000, False), (1001, True)])
def test_a_context_of_exactly_the_budget_is_sent_and_one_token_more_is_rejected(tokens, rejected):
    ctx = _ctx([])  # a new session: no history, no anchor yet
    user_input = _input_for(ctx, tokens)
    plan = _plan(ctx, user_input)
    assert [m.content for m in plan.messages] == [SYSTEM, user_input]
    assert plan.tokens_before == plan.tokens_after == _sent(plan) == tokens
    assert plan.rejected is rejected


@pytest.mark.parametrize("covered", [1, 3])
def test_anchor_covered_by_the_summary_is_sent_and_counted_once(covered):
    history = [_sized_turn(i, 100) for i in range(covered + 1, covered + 4)]
    plan = _plan(_summarized(history, covered=covered), "what next?", Budget(8192, 2048))
    contents = [m.content for m in plan.messages]
    assert contents[:3] == [SYSTEM, summary_message_build(SUMMARY), anchor_message_build(ANCHOR)]
    assert contents.count(anchor_message_build(ANCHOR)) == 1
    assert plan.tokens_before == plan.tokens_after == _sent(plan)
    assert plan.pruned_turn_count == 0 and plan.pruned_through_turn_index is None


def test_history_the_loader_did_not_fetch_counts_as_pruned():
    unfetched = [_sized_turn(i, 2000) for i in range(1, 7)]  # could never fit: left in the database
    fetched = [_sized_turn(i, 100) for i in range(7, 11)]
    ctx = SessionContext(
        summary_text=None,
        summary_covers_through=0,
        history=tuple(fetched),
        history_total_tokens=sum(t.tokens for t in unfetched + fetched),
        history_total_count=10,
        anchor_turn_index=1,
        anchor_text=unfetched[0].user_input,
        next_turn_index=11,
    )
    plan = _plan(ctx, "go on", Budget(8192, 2048))
    # Before the guardrail every turn counts once, the anchor's among them.
    assert plan.tokens_before == count_messages_tokens([SYSTEM, "go on"]) + 6 * 2000 + 4 * 100
    assert plan.kept_turn_indexes == (7, 8, 9, 10)
    assert plan.pruned_turn_count == 6 and plan.pruned_through_turn_index == 6
    assert plan.messages[1].content == anchor_message_build(unfetched[0].user_input)
    assert plan.tokens_after == _sent(plan) and not plan.rejected


def test_a_turn_without_reply_costs_exactly_its_input():
    question = "Is anyone there?"
    assert turn_context_tokens(user_input=question, assistant_output="") == count_message_tokens(question)
    assert turn_context_tokens(user_input=question, assistant_output="Writer: yes") == count_message_tokens(
        question
    ) + count_message_tokens("Writer: yes")
    unanswered = HistoryTurn(2, question, "", turn_context_tokens(user_input=question, assistant_output=""))
    plan = _plan(_summarized([unanswered]), "hello?", Budget(8192, 2048))
    assert [m.content for m in plan.messages][3:] == [question, "hello?"]  # no empty reply is sent
    assert plan.tokens_before == plan.tokens_after == _sent(plan)


@pytest.mark.parametrize(("window", "max_out"), [(2048, 2048), (1024, 2048)])
def test_output_allowance_filling_the_window_leaves_no_budget(window, max_out):
    plan = _plan(_ctx([]), "hi", Budget(window, max_out))
    assert plan.budget.tokens == 0
    assert plan.rejected


def test_same_turn_replies_follow_the_user_input():
    plan = context_prepare(
        system_prompt=SYSTEM,
        session_context=_ctx([]),
        user_input="@a @b go",
        same_turn_replies=[("Alpha", "first!")],
        budget=Budget(8192, 2048),
    )
    assert [(m.role, m.content) for m in plan.messages[-2:]] == [
        ("user", "@a @b go"),
        ("assistant", "Alpha: first!"),
    ]


@pytest.mark.parametrize(("window", "max_out", "expected"), [(200000, 8192, 6144), (4096, 1024, 3072)])
def test_budget_is_model_limits_capped_by_settings(window, max_out, expected):
    budget = Budget.for_agent(
        context_window_tokens=None, model_context_window=window, model_max_output_tokens=max_out
    )
    assert budget.tokens == expected


@pytest.mark.parametrize(
    ("agent_window", "model_window", "ceiling", "expected_window"),
    [
        (120_000, 128_000, 131_072, 120_000),  # the agent's own window, within its model's
        (120_000, 64_000, 131_072, 64_000),  # never above the model's own
        (120_000, 200_000, 100_000, 100_000),  # nor above the operator's ceiling
        (None, 128_000, 131_072, 8192),  # without its own: CONTEXT_WINDOW_TOKENS
    ],
)
def test_an_agent_window_is_capped_by_its_model_and_the_ceiling(
    settings, agent_window, model_window, ceiling, expected_window
):
    settings.CONTEXT_WINDOW_MAX_TOKENS = ceiling
    budget = Budget.for_agent(
        context_window_tokens=agent_window, model_context_window=model_window, model_max_output_tokens=16_384
    )
    assert budget.context_window == expected_window
    assert budget.max_output_tokens == 2048 and budget.tokens == expected_window - 2048
