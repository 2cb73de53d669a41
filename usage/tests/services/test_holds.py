"""Credit holds to the last unit of credit (0.0001): placed only within the available credits,
released once, settled with the debit capped at the balance minus the other holds, the summary share
carved out of what was held, and the sweep freeing only what expired."""

import logging
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.utils import timezone

from pantheon.observability import HoldsSwept, listen, unlisten
from pantheon.testing.processes import concurrently
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.holds import (
    HoldRequest,
    InsufficientCredits,
    Settlement,
    credit_hold_extend,
    credit_hold_place,
    credit_hold_release,
    credit_hold_settle,
    credit_holds_sweep,
    summary_hold_expiry,
    summary_hold_find,
)
from usage.tests.factories import CreditHoldFactory, CreditLedgerEntryFactory, UserFactory

pytestmark = pytest.mark.django_db

UNIT = Decimal("0.0001")  # the smallest amount of credit


@pytest.fixture
def user():
    """A user with 10 credits (the root fixture's user, with figures that read plainly)."""
    return UserFactory(credit_account__balance=Decimal("10"))


def _request(
    user, amount, *, kind=CreditHold.Kind.TURN, expires_in=timedelta(minutes=5), **fields
) -> HoldRequest:
    return HoldRequest(
        user_id=user.pk, kind=kind, amount=Decimal(amount), expires_at=timezone.now() + expires_in, **fields
    )


def _account(user) -> CreditAccount:
    return CreditAccount.objects.get(user=user)


def _assert_books(user) -> None:
    """Balance ≥ 0 and equal to the ledger; held equal to the open holds."""
    account = _account(user)
    ledger = CreditLedgerEntry.objects.filter(user=user).aggregate(s=Sum("amount"))["s"]
    holds = CreditHold.objects.filter(user=user).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    assert account.balance >= 0 and account.balance == ledger
    assert account.held == holds


def _settle(user, hold, charge, **kwargs):
    with transaction.atomic():
        return credit_hold_settle(
            user_id=user.pk, hold=hold, charge=Decimal(charge), kind="turn_debit", **kwargs
        )


# Placing


def test_a_hold_reserves_its_amount_with_what_it_is_for(user):
    room_id, session_id, turn_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    request = _request(
        user,
        "4",
        cost_usd=Decimal("0.004"),
        model_alias="qwen",
        room_id=room_id,
        session_id=session_id,
        turn_id=turn_id,
    )
    hold = credit_hold_place(hold=request)
    stored = CreditHold.objects.get(pk=hold.pk)
    assert (stored.kind, stored.amount, stored.cost_usd, stored.model_alias) == (
        "turn",
        4,
        Decimal("0.004"),
        "qwen",
    )
    assert (stored.room_id, stored.session_id, stored.turn_id) == (room_id, session_id, turn_id)
    assert stored.expires_at == request.expires_at
    assert (_account(user).balance, _account(user).held) == (10, 4)
    _assert_books(user)


@pytest.mark.parametrize(("amount", "placed"), [(Decimal("7"), True), (Decimal("7") + UNIT, False)])
def test_a_hold_of_exactly_the_balance_minus_other_holds_is_placed_and_one_unit_more_is_refused(
    user, amount, placed
):
    CreditHoldFactory(user=user, amount=Decimal("3"))  # another turn in flight
    if placed:
        credit_hold_place(hold=_request(user, amount))
        assert _account(user).held == 10
    else:
        with pytest.raises(InsufficientCredits) as refused:
            credit_hold_place(hold=_request(user, amount))
        assert refused.value.code == "insufficient_credits"
        assert Decimal(refused.value.extra["available"]) == 7
        assert Decimal(refused.value.extra["required_credits"]) == amount
        assert _account(user).held == 3 and CreditHold.objects.filter(user=user).count() == 1
    _assert_books(user)


def test_available_credits_are_reported_as_zero_never_negative(user):
    CreditHoldFactory(user=user, amount=Decimal("8"))
    CreditLedgerEntryFactory(user=user, amount=Decimal("-6"))  # an operator took credits back: 4 left, 8 held
    with pytest.raises(InsufficientCredits) as refused:
        credit_hold_place(hold=_request(user, "1"))
    assert refused.value.extra == {"available": "0", "required_credits": "1"}
    assert "and 0 are available" in refused.value.message


def test_a_user_without_a_credit_account_has_nothing_available():
    user = UserFactory(credit_account=None)
    with pytest.raises(InsufficientCredits) as refused:
        credit_hold_place(hold=_request(user, "0.5"))
    assert refused.value.extra == {"available": "0", "required_credits": "0.5"}
    assert not CreditHold.objects.filter(user=user).exists()


# Releasing and extending


def test_a_released_hold_gives_its_credits_back_once(user):
    other = CreditHoldFactory(user=user, amount=Decimal("2"))
    hold = credit_hold_place(hold=_request(user, "5"))
    credit_hold_release(hold=hold)
    credit_hold_release(hold=hold)  # a second release finds nothing to give back
    account = _account(user)
    assert (account.balance, account.held) == (10, 2)
    assert list(CreditHold.objects.filter(user=user).values_list("pk", flat=True)) == [other.pk]
    assert not CreditLedgerEntry.objects.filter(user=user).exclude(kind="grant").exists()
    _assert_books(user)


def test_an_extended_hold_outlives_its_first_expiry(user):
    hold = credit_hold_place(hold=_request(user, "1", expires_in=timedelta(seconds=30)))
    later = timezone.now() + timedelta(minutes=10)
    credit_hold_extend(hold=hold, expires_at=later)
    assert hold.expires_at == later
    swept = credit_holds_sweep(now=timezone.now() + timedelta(minutes=5))
    assert (swept.turn_holds, swept.summary_holds) == (0, 0)
    assert CreditHold.objects.get().expires_at == later


# Settling


def test_a_settled_hold_debits_the_charge_and_releases_the_rest(user):
    CreditHoldFactory(user=user, amount=Decimal("1"))  # another turn in flight
    turn_id = uuid.uuid4()
    hold = credit_hold_place(hold=_request(user, "4"))
    settlement = _settle(user, hold, "1.5", turn_id=turn_id, note="a turn")
    assert (settlement.debited, settlement.unbilled, settlement.balance_after) == (
        Decimal("1.5"),
        0,
        Decimal("8.5"),
    )
    account = _account(user)
    assert (account.balance, account.held) == (Decimal("8.5"), 1)
    assert not CreditHold.objects.filter(pk=hold.pk).exists()
    entry = CreditLedgerEntry.objects.get(user=user, kind="turn_debit")
    assert (entry.amount, entry.balance_after, entry.turn_id, entry.note) == (
        Decimal("-1.5"),
        Decimal("8.5"),
        turn_id,
        "a turn",
    )
    _assert_books(user)


@pytest.mark.parametrize(
    ("charge", "debited", "unbilled"),
    [
        (Decimal("3"), Decimal("3"), 0),  # exactly what was held
        (Decimal("3") + UNIT, Decimal("3"), UNIT),  # one unit more is left unbilled (balance or not)
        (Decimal("2.5"), Decimal("2.5"), 0),  # less than the hold: the rest is released
    ],
)
def test_the_debit_is_capped_at_what_was_held(user, charge, debited, unbilled):
    CreditHoldFactory(user=user, amount=Decimal("5"))  # other turns in flight keep 5 whole
    hold = credit_hold_place(hold=_request(user, "3"))  # 2 credits stay free: never taken
    settlement = _settle(user, hold, charge)
    assert (settlement.debited, settlement.unbilled) == (debited, unbilled)
    account = _account(user)
    assert (account.balance, account.held) == (10 - debited, 5)
    assert settlement.balance_after == account.balance
    _assert_books(user)


@pytest.mark.parametrize(
    ("charge", "debited", "unbilled"),
    [
        (Decimal("2"), Decimal("2"), 0),  # exactly the balance minus the other holds
        (Decimal("2") + UNIT, Decimal("2"), UNIT),  # one unit more is left unbilled
    ],
)
def test_the_debit_is_capped_at_the_balance_minus_the_other_holds(user, charge, debited, unbilled):
    CreditHoldFactory(user=user, amount=Decimal("6"))  # other turns in flight keep 6 whole
    hold = credit_hold_place(hold=_request(user, "3"))
    CreditLedgerEntryFactory(user=user, amount=Decimal("-2"))  # balance 8 while 9 are held
    settlement = _settle(user, hold, charge)
    assert (settlement.debited, settlement.unbilled) == (debited, unbilled)
    account = _account(user)
    assert (account.balance, account.held) == (8 - debited, 6)
    assert settlement.balance_after == account.balance
    _assert_books(user)


def test_a_hold_already_swept_counts_as_zero(user):
    CreditHoldFactory(user=user, amount=Decimal("6"))
    hold = credit_hold_place(hold=_request(user, "3"))
    credit_hold_release(hold=hold)  # as the sweep frees it after its expiry
    settlement = _settle(user, hold, "5")
    # Nothing of this hold is held any more: nothing may be debited, the whole charge is unbilled.
    assert (settlement.debited, settlement.unbilled) == (0, 5)
    assert (_account(user).balance, _account(user).held) == (10, 6)
    _assert_books(user)


def test_a_debit_never_takes_the_balance_below_what_other_holds_overreach(user):
    CreditHoldFactory(user=user, amount=Decimal("8"))
    CreditLedgerEntryFactory(user=user, amount=Decimal("-7"))  # balance 3, other holds 8
    hold = CreditHoldFactory(user=user, amount=Decimal("1"))
    settlement = _settle(user, hold, "1")
    assert (settlement.debited, settlement.unbilled, settlement.balance_after) == (0, 1, 3)
    assert (_account(user).balance, _account(user).held) == (3, 8)
    assert not CreditLedgerEntry.objects.filter(user=user, kind="turn_debit").exists()
    _assert_books(user)


def test_a_settlement_without_a_hold_debits_nothing(user):
    settlement = _settle(user, None, "12")
    assert (settlement.debited, settlement.unbilled, settlement.balance_after) == (0, 12, 10)
    assert (_account(user).balance, _account(user).held) == (10, 0)
    _assert_books(user)


def test_nothing_charged_writes_no_ledger_entry(user):
    hold = credit_hold_place(hold=_request(user, "2"))
    settlement = _settle(user, hold, "0")
    assert (settlement.debited, settlement.unbilled, settlement.balance_after) == (0, 0, 10)
    assert not CreditLedgerEntry.objects.filter(user=user).exclude(kind="grant").exists()
    assert _account(user).held == 0


def _summary_share(user, amount, session_id) -> HoldRequest:
    return _request(
        user,
        amount,
        kind=CreditHold.Kind.SUMMARY,
        expires_in=timedelta(hours=1),
        session_id=session_id,
        covers_through_turn_index=8,
    )


@pytest.mark.parametrize(
    ("share", "kept", "debited"),
    [
        (Decimal("1.5"), Decimal("1.5"), 1),  # part of the hold moves into the summary's own
        (Decimal("3.5"), Decimal("3.5"), Decimal("0.5")),  # the turn may use only what is left
        (Decimal("4"), Decimal("4"), 0),  # all of it: the turn's charge goes unbilled
        (Decimal("6"), Decimal("4"), 0),  # never more than was held
    ],
)
def test_the_summary_share_stays_held_for_the_summary_up_to_what_was_held(user, share, kept, debited):
    session_id = uuid.uuid4()
    hold = credit_hold_place(hold=_request(user, "4"))
    settlement = _settle(user, hold, "1", keep_for_summary=_summary_share(user, share, session_id))
    assert (settlement.debited, settlement.unbilled) == (debited, 1 - debited)
    summary_hold = summary_hold_find(session_id=session_id, through_index=8)
    assert (summary_hold.kind, summary_hold.amount) == ("summary", kept)
    assert (_account(user).balance, _account(user).held) == (10 - debited, kept)
    _assert_books(user)


def test_a_swept_hold_leaves_no_share_for_the_summary(user):
    session_id = uuid.uuid4()
    hold = credit_hold_place(hold=_request(user, "4"))
    credit_hold_release(hold=hold)
    _settle(user, hold, "1", keep_for_summary=_summary_share(user, "2", session_id))
    assert (_account(user).balance, _account(user).held) == (10, 0)
    _assert_books(user)


def test_a_summary_share_of_nothing_opens_no_summary_hold(user):
    session_id = uuid.uuid4()
    hold = credit_hold_place(hold=_request(user, "4"))
    _settle(user, hold, "1", keep_for_summary=_summary_share(user, "0", session_id))
    assert summary_hold_find(session_id=session_id, through_index=8) is None
    assert _account(user).held == 0


def test_a_summary_hold_expires_after_the_summary_hold_seconds(settings):
    settings.SUMMARY_HOLD_SECONDS = 900
    before = timezone.now()
    expiry = summary_hold_expiry()
    after = timezone.now()
    assert before + timedelta(seconds=900) <= expiry <= after + timedelta(seconds=900)


# The sweep


def _warnings(caplog) -> list[tuple]:
    """The sweep's warnings to the operator: (turn holds, summary holds, credits released) each."""
    return [
        r.args for r in caplog.records if r.name == "usage.services.holds" and r.levelno == logging.WARNING
    ]


@pytest.fixture
def observed():
    seen: list[HoldsSwept] = []
    listen(HoldsSwept, seen.append)
    yield seen
    unlisten(HoldsSwept, seen.append)


def test_the_sweep_frees_only_holds_past_their_expiry_and_reports_only_turn_holds(user, observed, caplog):
    now = timezone.now()
    expired_turn = CreditHoldFactory(
        user=user, amount=Decimal("2"), turn_id=uuid.uuid4(), expires_at=now - timedelta(seconds=1)
    )
    expired_summary = CreditHoldFactory(
        user=user, kind="summary", amount=Decimal("1.5"), expires_at=now - timedelta(seconds=1)
    )
    due_now = CreditHoldFactory(user=user, amount=Decimal("0.25"), expires_at=now)  # not past it yet
    live = CreditHoldFactory(
        user=user, kind="summary", amount=Decimal("3"), expires_at=now + timedelta(minutes=1)
    )

    with caplog.at_level(logging.WARNING, logger="usage.services.holds"):
        swept = credit_holds_sweep(now=now)

    assert (swept.turn_holds, swept.summary_holds, swept.credits_released) == (1, 1, Decimal("3.5"))
    assert observed == [swept]
    assert set(CreditHold.objects.values_list("pk", flat=True)) == {due_now.pk, live.pk}
    assert _account(user).held == Decimal("3.25")
    event = LlmCallEvent.objects.get()  # the summary hold is not reported as an abandoned call
    assert (
        event.abandoned and event.turn_id == expired_turn.turn_id and event.cost_usd == expired_turn.cost_usd
    )
    assert expired_summary.pk not in set(CreditHold.objects.values_list("pk", flat=True))
    assert _warnings(caplog) == [(1, 1, Decimal("3.5"))]
    _assert_books(user)


def test_a_sweep_of_summary_holds_alone_is_logged_and_one_of_nothing_is_quiet(user, observed, caplog):
    now = timezone.now()
    CreditHoldFactory(user=user, kind="summary", amount=Decimal("1"), expires_at=now - timedelta(seconds=1))
    with caplog.at_level(logging.WARNING, logger="usage.services.holds"):
        first = credit_holds_sweep(now=now)
        assert _warnings(caplog) == [(0, 1, Decimal("1"))]
        caplog.clear()
        again = credit_holds_sweep(now=now)
    assert (first.turn_holds, first.summary_holds, again.turn_holds, again.summary_holds) == (0, 1, 0, 0)
    assert again.credits_released == 0 and _warnings(caplog) == []
    assert observed == [first, again]
    assert not LlmCallEvent.objects.exists()


# Under concurrency: real threads, each with its own connection and transactions.

TRANSACTIONAL = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _own_connection(call):
    """``call`` as a thread runs it: on a connection of its own, closed when it is done."""

    def run():
        try:
            return call()
        finally:
            connections.close_all()

    return run


@TRANSACTIONAL
def test_simultaneous_holds_never_reserve_more_than_the_balance(user):
    @_own_connection
    def turn() -> CreditHold | InsufficientCredits:
        try:
            return credit_hold_place(hold=_request(user, "3"))
        except InsufficientCredits as refused:
            return refused

    results = concurrently(*[turn] * 10)
    placed = [r for r in results if isinstance(r, CreditHold)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(placed), len(refused)) == (3, 7)  # 10 credits: three worst cases of 3
    assert {Decimal(e.extra["available"]) for e in refused} == {Decimal(1)}
    assert (_account(user).balance, _account(user).held) == (10, 9)
    _assert_books(user)


@TRANSACTIONAL
def test_a_hold_its_turn_settles_while_the_sweep_frees_it_is_released_once(user):
    """The turn has the hold locked to settle it when the sweep comes for it: the sweep must wait and
    then find it gone, not lower ``held`` a second time; the turn debits what it owes."""
    now = timezone.now()
    first = CreditHoldFactory(
        user=user, amount=Decimal("2"), turn_id=uuid.uuid4(), expires_at=now - timedelta(seconds=2)
    )
    second = CreditHoldFactory(user=user, amount=Decimal("3"), expires_at=now - timedelta(seconds=1))
    locked, swept = threading.Event(), threading.Event()

    @_own_connection
    def turn_settles() -> Settlement:
        with transaction.atomic():
            list(CreditHold.objects.select_for_update().filter(pk=second.pk))
            locked.set()
            with connection.cursor() as cursor:  # until the sweep waits for this lock (or is done)
                deadline = time.monotonic() + 30
                while not swept.wait(0.01) and time.monotonic() < deadline:
                    # pg_stat_activity is a snapshot taken once per transaction unless cleared.
                    cursor.execute("SELECT pg_stat_clear_snapshot()")
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                    if cursor.fetchone()[0]:
                        break
            return credit_hold_settle(user_id=user.pk, hold=second, charge=Decimal("1"), kind="turn_debit")

    @_own_connection
    def sweep() -> HoldsSwept | None:
        try:
            return credit_holds_sweep(now=now) if locked.wait(30) else None
        finally:
            swept.set()

    settlement, report = concurrently(turn_settles, sweep)
    assert settlement is not None and report is not None, "a thread failed (its traceback is above)"
    assert (settlement.debited, settlement.unbilled) == (1, 0)
    assert (report.turn_holds, report.summary_holds, report.credits_released) == (1, 0, 2)  # the first only
    assert not CreditHold.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert (_account(user).balance, _account(user).held) == (9, 0)
    assert LlmCallEvent.objects.get(abandoned=True).turn_id == first.turn_id
    _assert_books(user)
