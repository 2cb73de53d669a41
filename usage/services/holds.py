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

import json
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
from usage.models import Budget, BudgetUsage, CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.selectors import credit_account_figures
from usage.services.budgets import (
    BudgetClaim,
    budget_refusal,
    budget_shares_settle,
    budget_usage_open,
    budgets_applicable,
    period_starts,
)
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


def credit_hold_place(*, hold: HoldRequest, budgets: BudgetClaim | None = None) -> CreditHold:
    """Reserve ``hold.amount`` of the user's available credits and its share of every budget that
    applies (``budgets``: through which room and key, by model), or raise ``BudgetExceeded`` or
    ``InsufficientCredits``.

    One conditional statement decides: concurrent turns of one user can never reserve more than the
    balance, nor more than a budget's limit, between them. The first hold of a budget's period opens
    its row and tries again.
    """
    claim = budgets or BudgetClaim(room_id=hold.room_id)
    row = CreditHold(**hold.__dict__)
    for _ in range(2):
        placed, missing, short = _hold_place_statement(row, claim)
        if placed is not None:
            row.budget_shares = placed
            row._state.adding = False
            return row
        if not missing:
            break
        budget_usage_open(
            budgets=budgets_applicable(
                user_id=hold.user_id, room_id=claim.room_id, api_key_id=claim.api_key_id
            )
        )
    if short is not None:
        raise budget_refusal(figures=short, required=hold.amount)
    available = credit_account_figures(user_id=hold.user_id)["credits_available"]
    raise InsufficientCredits(available=available, required=hold.amount)


# The account is locked first (every budget of a hold is its user's: this serializes them), then the
# current period's row of each budget that applies: ``FOR UPDATE`` returns their latest versions, so
# the check sees every hold and settlement committed before it. All or nothing: the account, the
# periods and the hold's row change only if the balance and every budget cover their share.
_HOLD_PLACE_SQL = """
WITH account AS (
  SELECT user_id FROM {account} WHERE user_id = %(user)s FOR UPDATE
),
wanted AS (
  SELECT b.id AS budget_id, b.model_alias AS m, b.limit_credits AS lim,
    CASE b.period WHEN 'day' THEN %(day)s::timestamptz WHEN 'week' THEN %(week)s::timestamptz
      ELSE %(month)s::timestamptz END AS period_start,
    CASE WHEN b.model_alias = '' THEN %(amount)s::numeric
      ELSE COALESCE((%(parts)s::jsonb ->> b.model_alias)::numeric, 0) END AS share,
    CASE WHEN b.model_alias IN ('', %(summary_alias)s) THEN %(summary)s::numeric ELSE 0 END AS summary_part
  FROM {budget} b
  WHERE b.user_id = %(user)s AND EXISTS (SELECT 1 FROM account)
    AND ((b.room_id IS NULL AND b.api_key_id IS NULL) OR b.room_id = %(room)s OR b.api_key_id = %(key)s)
),
locked AS (
  SELECT u.id, u.budget_id, u.spent, u.held FROM {usage} u
  JOIN wanted w ON w.budget_id = u.budget_id AND w.period_start = u.period_start AND w.share > 0
  ORDER BY u.id FOR UPDATE OF u
),
fit AS (
  SELECT COUNT(*) FILTER (WHERE l.id IS NULL) AS missing,
    (SELECT json_build_object('id', w2.budget_id, 'limit', w2.lim::text, 'spent', l2.spent::text,
                              'held', l2.held::text, 'share', w2.share::text)
     FROM wanted w2 JOIN locked l2 ON l2.budget_id = w2.budget_id
     WHERE l2.spent + l2.held + w2.share > w2.lim ORDER BY w2.budget_id LIMIT 1) AS short
  FROM wanted w LEFT JOIN locked l ON l.budget_id = w.budget_id WHERE w.share > 0
),
reserved AS (
  UPDATE {account} SET held = held + %(amount)s, updated_at = %(now)s
  WHERE user_id = %(user)s AND balance - held >= %(amount)s
    AND (SELECT missing = 0 AND short IS NULL FROM fit)
  RETURNING user_id
),
budgets_held AS (
  UPDATE {usage} u SET held = u.held + w.share
  FROM wanted w
  WHERE w.budget_id = u.budget_id AND w.period_start = u.period_start AND w.share > 0
    AND EXISTS (SELECT 1 FROM reserved)
  RETURNING u.id, w.share, w.summary_part, w.m
),
inserted AS (
  INSERT INTO {hold} ({columns}) SELECT {select} FROM reserved RETURNING budget_shares
)
SELECT (SELECT budget_shares FROM inserted), (SELECT missing FROM fit), (SELECT short FROM fit)
"""

# Amounts as exact strings: a JSON number would come back to Python as a float.
_SHARES_SQL = """COALESCE((SELECT jsonb_agg(jsonb_build_object('u', id, 'a', share::text,
  's', summary_part::text, 'm', m) ORDER BY id) FROM budgets_held), '[]'::jsonb)"""


def _hold_place_statement(row: CreditHold, claim: BudgetClaim) -> tuple[list | None, int, dict | None]:
    """The statement above: ``(the hold's budget shares, or None if not placed; budget periods not
    opened yet; the first budget found short, with its locked figures)``."""
    columns, select, params = row_select(
        row, computed={"user_id": "reserved.user_id", "budget_shares": _SHARES_SQL}
    )
    named = {f"p{i}": p for i, p in enumerate(params)}
    select = select.replace("%s", "{}").format(*(f"%({k})s" for k in named))
    sql = _HOLD_PLACE_SQL.format(
        account=table(CreditAccount),
        budget=table(Budget),
        usage=table(BudgetUsage),
        hold=table(CreditHold),
        columns=columns,
        select=select,
    )
    starts = period_starts()
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                **named,
                "user": row.user_id,
                "amount": row.amount,
                "now": timezone.now(),
                "day": starts["day"],
                "week": starts["week"],
                "month": starts["month"],
                "parts": json.dumps({k: str(v) for k, v in claim.parts.items()}),
                "summary": claim.summary,
                "summary_alias": settings.SUMMARY_MODEL_ALIAS,
                "room": claim.room_id,
                "key": claim.api_key_id,
            },
        )
        shares, missing, short = cursor.fetchone()
    if isinstance(shares, str):
        shares = json.loads(shares)
    if isinstance(short, str):
        short = json.loads(short)
    return shares, missing or 0, short


def credit_hold_release(*, hold: CreditHold, now: datetime | None = None) -> bool:
    """Give a hold back without debiting anything (a failed or refused turn, an expired hold).
    Harmless if already gone; returns whether this call freed it."""
    with transaction.atomic():
        if not CreditHold.objects.filter(pk=hold.pk).delete()[0]:
            return False
        CreditAccount.objects.filter(user_id=hold.user_id).update(
            held=F("held") - hold.amount, updated_at=now or timezone.now()
        )
        budget_shares_settle(shares=hold.budget_shares, debited=None)
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
    moved = []
    if released:
        moved = budget_shares_settle(
            shares=hold.budget_shares, debited=settlement.debited, kept=settlement.kept
        )
    if settlement.kept:
        # (session, covered index) is unique: only the turn that commits that index writes it.
        CreditHold.objects.create(
            **{**keep_for_summary.__dict__, "amount": settlement.kept, "budget_shares": moved}
        )
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
