"""The summary trigger's two rules on hand-built sessions (no database): the Nth turn since the last
summary made or asked for, and the minimum history a summary would replace.

With a budget of 1,000 tokens the figures read plainly: the context reaches the trigger at 700
tokens (70 %), and a summary is worth asking for only when the turns it would replace — those after
the latest summary made or asked for, less the anchor's input, which every context keeps — hold at
least 250 tokens (25 %).
"""

import pytest

from orchestration.context import HistoryTurn, SessionContext, summary_trigger
from orchestration.llm.tokens import count_message_tokens
from orchestration.tests.test_context import ANCHOR, SUMMARY, _sized_turn

BUDGET = 1000
AT_TRIGGER = 700  # the context at exactly the trigger ratio: only the minimum history decides


def _session(
    turns: list[HistoryTurn],
    *,
    covered: int,
    requested: int = 0,
    anchor: tuple[int, str] = (1, ANCHOR),
    unfetched: tuple[HistoryTurn, ...] = (),
    next_index: int | None = None,
) -> SessionContext:
    """A session whose summary covers through ``covered`` (none when 0), with a summary asked for
    through ``requested``, and the older ``unfetched`` turns the loader left in the database."""
    return SessionContext(
        summary_text=SUMMARY if covered else None,
        summary_covers_through=covered,
        history=tuple(turns),
        history_total_tokens=sum(t.tokens for t in unfetched + tuple(turns)),
        history_total_count=len(unfetched) + len(turns),
        anchor_turn_index=anchor[0],
        anchor_text=anchor[1],
        next_turn_index=next_index or (turns[-1].turn_index + 1 if turns else covered + 1),
        summary_requested_through=requested,
    )


def _triggered(ctx: SessionContext, tokens_before: int = AT_TRIGGER) -> bool:
    return summary_trigger(session_context=ctx, tokens_before=tokens_before, budget_tokens=BUDGET)


@pytest.mark.parametrize(("history_tokens", "triggered"), [(250, True), (249, False)])
def test_history_of_exactly_a_quarter_of_the_budget_triggers_and_one_token_less_does_not(
    history_tokens, triggered
):
    ctx = _session([_sized_turn(2, history_tokens)], covered=1)  # the anchor is in the summary
    assert _triggered(ctx) is triggered


def test_a_context_under_the_trigger_ratio_asks_for_nothing_however_much_history_it_holds():
    ctx = _session([_sized_turn(i, 100) for i in range(2, 8)], covered=1)
    assert _triggered(ctx, tokens_before=AT_TRIGGER) and not _triggered(ctx, tokens_before=AT_TRIGGER - 1)


def test_history_the_loader_did_not_fetch_counts_toward_what_a_summary_would_replace():
    # After the summary through turn 5, turns 6 and 7 could never fit and stayed in the database;
    # the four recent turns of 50 (200 tokens, too few alone) are fetched. A summary would replace
    # them all.
    older = (_sized_turn(6, 1500), _sized_turn(7, 1500))
    ctx = _session([_sized_turn(i, 50) for i in range(8, 12)], covered=5, requested=5, unfetched=older)
    assert ctx.next_turn_index - 5 < 8  # not the eighth turn: only the history decides
    assert _triggered(ctx)


@pytest.mark.parametrize(("after_pending", "triggered"), [(250, True), (249, False)])
def test_a_pending_summary_leaves_only_the_turns_after_it_to_count(after_pending, triggered):
    # Summary made through turn 1, another asked for through turn 3 and not made yet: turns 2 and 3
    # (600 tokens) are on their way out; only turns 4 and 5 could be replaced by a new one.
    turns = [
        _sized_turn(2, 300),
        _sized_turn(3, 300),
        _sized_turn(4, 125),
        _sized_turn(5, after_pending - 125),
    ]
    ctx = _session(turns, covered=1, requested=3)
    assert _triggered(ctx) is triggered


@pytest.mark.parametrize(("rest", "triggered"), [(250, True), (249, False)])
def test_the_anchor_input_does_not_count_while_it_is_among_the_turns_to_replace(rest, triggered):
    # No summary yet: turn 1 is the anchor and stays in every context, so its input cannot shrink.
    opening = _sized_turn(1, 200)
    anchor_input = count_message_tokens(opening.user_input)
    ctx = _session(
        [opening, _sized_turn(2, rest + anchor_input - opening.tokens)],
        covered=0,
        anchor=(1, opening.user_input),
    )
    assert ctx.history_total_tokens - anchor_input == rest
    assert _triggered(ctx) is triggered


@pytest.mark.parametrize(
    ("covered", "requested", "anchor_index", "on_their_way_out"),
    [
        (1, 1, 1, ()),  # the summary made through turn 1 holds the anchor
        (3, 3, 1, ()),  # ... or one made through a later turn
        (0, 2, 2, (2,)),  # a pending summary through exactly the anchor's turn (turn 1 failed)
        (1, 3, 1, (2, 3)),  # a pending one after a summary that holds the anchor
    ],
)
def test_an_anchor_a_summary_made_or_asked_for_covers_is_not_subtracted(
    covered, requested, anchor_index, on_their_way_out
):
    first = requested + 1
    counted = [_sized_turn(first, 125), _sized_turn(first + 1, 125)]  # 250 tokens: exactly enough
    pending = [_sized_turn(i, 300) for i in on_their_way_out]
    ctx = _session(pending + counted, covered=covered, requested=requested, anchor=(anchor_index, ANCHOR))
    assert _triggered(ctx)


@pytest.mark.parametrize(("covered", "requested"), [(8, 0), (0, 8), (4, 8)])
@pytest.mark.parametrize(("next_index", "triggered"), [(15, False), (16, True)])
def test_the_eighth_turn_counts_from_the_later_of_the_summary_made_and_the_one_asked_for(
    covered, requested, next_index, triggered
):
    ctx = _session(
        [_sized_turn(next_index - 1, 20)], covered=covered, requested=requested, next_index=next_index
    )
    assert _triggered(ctx, tokens_before=0) is triggered  # far under the ratio: only the count decides
