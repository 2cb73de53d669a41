"""Credit holds: a turn reserves its worst case before its first LLM call, and settles it when it
commits (docs/metering.md, "Credit holds").

The invariants, whatever the concurrency:

- ``CreditAccount.balance`` never goes below zero and always equals the sum of the user's ledger;
- ``CreditAccount.held`` is the sum of the user's ``CreditHold`` rows;
- a hold is placed with one conditional UPDATE (``balance − held ≥ amount``), so two turns can never
  both reserve the same credits;
- a debit never takes more than was held, nor more than the balance minus the *other* holds: should a
  provider report more than was held, the rest is recorded on the events as unbilled
  (``provider_overshoot``) instead of being taken from the balance (``usage.services.settlement``).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from pantheon.db import row_select, table
from pantheon.errors import PaymentRequired
from pantheon.observability import HoldsSwept, observe
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.selectors import credit_account_figures
from usage.services.settlement import Settlement, settlement_compute

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


class InsufficientCredits(PaymentRequired):
    code = "insufficient_credits"
    default_message = "Your available credits cannot cover this turn's worst case."

    def __init__(self, *, available: Decimal, required: Decimal) -> None:
        super().__init__(
            f"This needs up to {required} credits and {max(available, ZERO)} are available "
            "(your balance minus what your turns in flight have reserved).",
            extra={"available": str(max(available, ZERO)), "required_credits": str(required)},
        )


@dataclass(frozen=True)
class HoldRequest:
    """What a hold is for: enough to release it, settle it, or report it if its owner dies."""

    user_id: int
    kind: str
    amount: Decimal
    expires_at: datetime
    cost_usd: Decimal = ZERO
    model_alias: str = ""
    room_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    turn_id: uuid.UUID | None = None
    covers_through_turn_index: int | None = None


def credit_hold_place(*, hold: HoldRequest) -> CreditHold:
    """Reserve ``hold.amount`` of the user's available credits, or raise ``InsufficientCredits``.

    One conditional UPDATE decides: concurrent turns of one user can never reserve more than
    the balance between them.
    """
    row = CreditHold(**hold.__dict__)
    placed = _hold_place_statement(row)
    if not placed:
        available = credit_account_figures(user_id=hold.user_id)["credits_available"]
        raise InsufficientCredits(available=available, required=hold.amount)
    row._state.adding = False
    return row


def _hold_place_statement(row: CreditHold) -> bool:
    """The conditional UPDATE and the hold's row in one statement."""
    columns, select, params = row_select(row, computed={"user_id": "reserved.user_id"})
    sql = (
        f"WITH reserved AS (UPDATE {table(CreditAccount)} SET held = held + %s, updated_at = %s "
        "WHERE user_id = %s AND balance - held >= %s RETURNING user_id) "
        f"INSERT INTO {table(CreditHold)} ({columns}) SELECT {select} FROM reserved RETURNING 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [row.amount, timezone.now(), row.user_id, row.amount, *params])
        return cursor.fetchone() is not None


def credit_hold_release(*, hold: CreditHold, now: datetime | None = None) -> bool:
    """Give a hold back without debiting anything (a failed or refused turn, an expired hold).
    Harmless if already gone; returns whether this call freed it."""
    with transaction.atomic():
        if not CreditHold.objects.filter(pk=hold.pk).delete()[0]:
            return False
        CreditAccount.objects.filter(user_id=hold.user_id).update(
            held=F("held") - hold.amount, updated_at=now or timezone.now()
        )
    return True


def credit_hold_extend(*, hold: CreditHold, expires_at: datetime) -> None:
    """Push a hold's expiry (a long streamed turn renews its session claim and its hold together)."""
    CreditHold.objects.filter(pk=hold.pk).update(expires_at=expires_at)
    hold.expires_at = expires_at


def credit_hold_settle(
    *,
    user_id: int,
    hold: CreditHold | None,
    charge: Decimal,
    kind: str,
    turn_id: uuid.UUID | None = None,
    keep_for_summary: HoldRequest | None = None,
    note: str = "",
) -> Settlement:
    """Debit ``charge`` against ``hold`` and release the rest, inside the caller's transaction
    (``settlement_compute`` says how much). ``keep_for_summary`` moves part of the hold into a hold of
    its own for the summary the turn asked for (its amount stays held)."""
    assert transaction.get_connection().in_atomic_block, "a hold settles with what it paid for"
    account = CreditAccount.objects.select_for_update().only("balance", "held").get(user_id=user_id)
    released = ZERO
    if hold is not None and CreditHold.objects.filter(pk=hold.pk).delete()[0]:
        released = hold.amount
    keep = keep_for_summary.amount if keep_for_summary is not None else ZERO
    settlement = settlement_compute(
        balance=account.balance, held=account.held, released=released, charge=charge, keep=keep
    )
    if settlement.kept:
        # (session, covered index) is unique: only the turn that commits that index writes it.
        CreditHold.objects.create(**{**keep_for_summary.__dict__, "amount": settlement.kept})
    CreditAccount.objects.filter(user_id=user_id).update(
        balance=settlement.balance_after, held=settlement.held_after, updated_at=timezone.now()
    )
    if settlement.debited:
        ledger_entry_build(
            user_id=user_id, kind=kind, settlement=settlement, turn_id=turn_id, note=note
        ).save()
    return settlement


def ledger_entry_build(
    *, user_id: int, kind: str, settlement: Settlement, turn_id: uuid.UUID | None = None, note: str = ""
) -> CreditLedgerEntry:
    """The ledger entry of a settlement's debit (unsaved)."""
    return CreditLedgerEntry(
        user_id=user_id,
        kind=kind,
        amount=-settlement.debited,
        balance_after=settlement.balance_after,
        turn_id=turn_id,
        note=note,
    )


def summary_hold_find(*, session_id: uuid.UUID, through_index: int) -> CreditHold | None:
    return CreditHold.objects.filter(
        kind=CreditHold.Kind.SUMMARY, session_id=session_id, covers_through_turn_index=through_index
    ).first()


def credit_holds_sweep(*, now: datetime | None = None) -> HoldsSwept:
    """Free the holds whose work died (a killed web worker, a lost summary task): past their expiry.

    An abandoned turn hold may stand for calls the provider charged: each is reported as a usage
    event flagged ``abandoned`` with the hold's worst-case estimate, so the operator sees it. So is a
    summary hold whose calls had begun (``calls_started_at``: its worker died mid-summary).
    """
    now = now or timezone.now()
    turn_holds = summary_holds = 0
    released = ZERO
    for hold in CreditHold.objects.filter(expires_at__lt=now).order_by("created_at")[:1000]:
        with transaction.atomic():
            if not credit_hold_release(hold=hold, now=now):
                continue  # settled meanwhile
            released += hold.amount
            if hold.kind == CreditHold.Kind.TURN:
                turn_holds += 1
                LlmCallEvent.objects.create(
                    user_id=hold.user_id,
                    room_id=hold.room_id,
                    session_id=hold.session_id,
                    turn_id=hold.turn_id,
                    purpose=LlmCallEvent.Purpose.AGENT_REPLY,
                    model_alias=hold.model_alias,
                    provider_model="",
                    cost_usd=hold.cost_usd,
                    billable=False,
                    status=LlmCallEvent.Status.FAILED,
                    error_code="abandoned",
                    abandoned=True,
                    reconciliation=LlmCallEvent.Reconciliation.NOT_APPLICABLE,
                )
            else:
                summary_holds += 1
                if hold.calls_started_at is not None:  # its worker died during its calls
                    LlmCallEvent.objects.create(**_abandoned_summary_event(hold))
    swept = HoldsSwept(turn_holds=turn_holds, summary_holds=summary_holds, credits_released=released)
    if turn_holds or summary_holds:
        logger.warning(
            "holds sweep freed %d turn holds (reported as abandoned) and %d summary holds: %s credits",
            turn_holds,
            summary_holds,
            released,
        )
    observe(swept)
    return swept


def _abandoned_summary_event(hold: CreditHold) -> dict:
    """The usage event of a summary whose worker died during its calls: the hold's worst case as the
    estimate, as for a turn (reconciliation may correct it)."""
    return {
        "user_id": hold.user_id,
        "room_id": hold.room_id,
        "session_id": hold.session_id,
        "purpose": LlmCallEvent.Purpose.SUMMARY,
        "model_alias": hold.model_alias,
        "provider_model": "",
        "cost_usd": hold.cost_usd,
        "billable": False,
        "status": LlmCallEvent.Status.FAILED,
        "error_code": "abandoned",
        "abandoned": True,
        "reconciliation": LlmCallEvent.Reconciliation.NOT_APPLICABLE,
    }


def summary_hold_expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.SUMMARY_HOLD_SECONDS)
