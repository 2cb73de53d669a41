"""The three budget steps on hand-built histories (no database)."""

import pytest

from orchestration.context import (
    Budget,
    HistoryTurn,
    SessionContext,
    context_prepare,
    turn_context_tokens,
)
from orchestration.llm.tokens import count_messages_tokens

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
