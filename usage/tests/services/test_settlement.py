"""The money of a commit (``settlement_compute``): what is debited, what stays held, what is left
unbilled — pure arithmetic on the locked account's figures."""

from decimal import Decimal as D

from usage.services.settlement import settlement_compute


def test_the_actual_cost_is_debited_and_the_rest_of_the_hold_released():
    s = settlement_compute(balance=D(100), held=D(12), released=D(10), charge=D(7), keep=D(0))
    assert (s.debited, s.unbilled, s.balance_after, s.held_after, s.kept) == (D(7), D(0), D(93), D(2), D(0))


def test_the_summary_share_stays_held_and_is_never_spent_by_the_turn():
    # A 10-credit hold of which 4 are the summary's; the provider reports 9 for the turn: only the
    # 6 beyond what stays held may be debited, the rest is unbilled, and 4 stay held for the summary.
    s = settlement_compute(balance=D(10), held=D(10), released=D(10), charge=D(9), keep=D(4))
    assert (s.debited, s.unbilled, s.balance_after, s.held_after, s.kept) == (D(6), D(3), D(4), D(4), D(4))
    assert s.balance_after >= s.held_after


def test_a_charge_never_exceeds_what_was_held():
    # A provider reporting 10¹⁸ tokens: the hold is debited, the rest stays unbilled, the balance
    # beyond the hold is never touched.
    s = settlement_compute(balance=D(1000), held=D(2), released=D(2), charge=D(10) ** 18, keep=D(0))
    assert (s.debited, s.unbilled, s.balance_after, s.held_after) == (D(2), D(10) ** 18 - 2, D(998), D(0))


def test_other_turns_holds_are_kept_whole():
    # Balance 12, 15 held of which 5 by this turn (an operator took credits meanwhile): the debit
    # leaves the other 10 whole.
    s = settlement_compute(balance=D(12), held=D(15), released=D(5), charge=D(30), keep=D(0))
    assert (s.debited, s.unbilled, s.balance_after, s.held_after) == (D(2), D(28), D(10), D(10))


def test_a_hold_already_swept_counts_as_zero_and_keeps_nothing():
    s = settlement_compute(balance=D(3), held=D(1), released=D(0), charge=D(5), keep=D(2))
    assert (s.debited, s.kept, s.balance_after, s.held_after) == (D(0), D(0), D(3), D(1))


def test_a_balance_below_what_others_hold_debits_nothing():
    s = settlement_compute(balance=D(1), held=D(4), released=D(2), charge=D(1), keep=D(0))
    assert (s.debited, s.unbilled, s.balance_after, s.held_after) == (D(0), D(1), D(1), D(2))
