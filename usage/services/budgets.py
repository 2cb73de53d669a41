"""Budgets: spend limits per calendar period on a user's turns, a room's or an API key's
(docs/budgets.md).

Each budget's period is a ``BudgetUsage`` row (spent, held). A turn's hold reserves its share of every
budget that applies in the statement that places the hold (``usage.services.holds``): the statement
locks the user's credit account first — every budget of a turn is one user's — then the period rows,
whose locked versions are the latest, and reserves all or nothing. The commit moves each share from
held to spent (the actual charge, never more than the share); a release gives it back.

A turn's share of a budget is the whole hold, or for a budget on one model alias that alias's part of
it (``BudgetClaim.parts``).
"""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx2
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from pantheon.errors import Forbidden, InvalidInput, PaymentRequired
from pantheon.observability import BudgetWarned, observe
from usage.formatting import credits_display
from usage.models import Budget, BudgetUsage

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass(frozen=True)
class BudgetClaim:
    """What a hold asks of the budgets: through which room and key, and its amount by model alias
    (``parts``; the summary's worst case, ``summary``, is in the summary model's part)."""

    room_id: object | None = None
    api_key_id: int | None = None
    parts: dict[str, Decimal] = field(default_factory=dict)
    summary: Decimal = ZERO

    def share(self, budget: Budget, amount: Decimal) -> Decimal:
        return amount if not budget.model_alias else self.parts.get(budget.model_alias, ZERO)


def period_starts(now: datetime | None = None) -> dict[str, datetime]:
    """The start of the current day, week (Monday) and month in ``BUDGET_TIME_ZONE``."""
    local = (now or timezone.now()).astimezone(ZoneInfo(settings.BUDGET_TIME_ZONE))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        Budget.Period.DAY: day,
        Budget.Period.WEEK: day - timedelta(days=day.weekday()),
        Budget.Period.MONTH: day.replace(day=1),
    }


def period_end(period: str, start: datetime) -> datetime:
    """When the period that began at ``start`` resets (wall-clock arithmetic: a DST day is 23 or
    25 hours long)."""
    start = start.astimezone(ZoneInfo(settings.BUDGET_TIME_ZONE))
    if period == Budget.Period.DAY:
        return (start + timedelta(days=1)).replace(hour=0)
    if period == Budget.Period.WEEK:
        return (start + timedelta(days=7)).replace(hour=0)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month, day=1)


def budgets_applicable(*, user_id: int, room_id=None, api_key_id: int | None = None):
    """The budgets a turn of ``user_id`` in ``room_id`` through ``api_key_id`` answers to."""
    scope = Q(room_id__isnull=True, api_key_id__isnull=True)
    if room_id is not None:
        scope |= Q(room_id=room_id)
    if api_key_id is not None:
        scope |= Q(api_key_id=api_key_id)
    return Budget.objects.filter(scope, user_id=user_id).order_by("id")


def budget_usage_open(*, budgets, now: datetime | None = None) -> None:
    """Make the current period's row of each budget (a hold found one missing)."""
    starts = period_starts(now)
    BudgetUsage.objects.bulk_create(
        [BudgetUsage(budget_id=b.pk, period_start=starts[b.period]) for b in budgets],
        ignore_conflicts=True,
    )


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period_start: datetime
    resets_at: datetime
    spent: Decimal
    held: Decimal
    warned: bool

    @property
    def remaining(self) -> Decimal:
        return max(self.budget.limit_credits - self.spent - self.held, ZERO)

    @property
    def used_share(self) -> Decimal:
        limit = self.budget.limit_credits
        return (self.spent + self.held) / limit if limit else Decimal(1)

    def as_dict(self) -> dict:
        b = self.budget
        return {
            "id": b.pk,
            "scope": b.scope,
            "room_id": str(b.room_id) if b.room_id else None,
            "api_key_id": b.api_key_id,
            "model_alias": b.model_alias or None,
            "period": b.period,
            "set_by": b.set_by,
            "limit_credits": str(b.limit_credits),
            "spent_credits": str(self.spent),
            "held_credits": str(self.held),
            "remaining_credits": str(self.remaining),
            "period_start": self.period_start.isoformat(),
            "resets_at": self.resets_at.isoformat(),
        }


def budget_statuses(budgets, *, now: datetime | None = None) -> list[BudgetStatus]:
    """Each budget's figures in its current period (zero where no hold has opened it yet)."""
    budgets = list(budgets)
    starts = period_starts(now)
    rows = {
        (u.budget_id, u.period_start): u
        for u in BudgetUsage.objects.filter(budget__in=budgets, period_start__in=set(starts.values()))
    }
    statuses = []
    for b in budgets:
        start = starts[b.period]
        usage = rows.get((b.pk, start))
        statuses.append(
            BudgetStatus(
                budget=b,
                period_start=start,
                resets_at=period_end(b.period, start),
                spent=usage.spent if usage else ZERO,
                held=usage.held if usage else ZERO,
                warned=bool(usage and usage.warned_at),
            )
        )
    return statuses


class BudgetExceeded(PaymentRequired):
    code = "budget_exceeded"
    default_message = "A budget cannot cover this turn's worst case."

    def __init__(self, *, status: BudgetStatus, required: Decimal) -> None:
        b = status.budget
        super().__init__(
            f"This needs up to {credits_display(required)} credits of the {ADJECTIVE[b.period]} budget on "
            f"{b.scope_label} ({credits_display(b.limit_credits)}: {credits_display(status.spent)} spent, "
            f"{credits_display(status.held)} held); it resets at {status.resets_at.isoformat()}.",
            extra={"budget": status.as_dict(), "required_credits": str(required)},
        )


def budget_refusal(*, figures: dict, required: Decimal) -> BudgetExceeded:
    """The refusal for the budget the hold statement found short (its locked figures)."""
    budget = Budget.objects.get(pk=figures["id"])
    start = period_starts()[budget.period]
    status = BudgetStatus(
        budget=budget,
        period_start=start,
        resets_at=period_end(budget.period, start),
        spent=Decimal(str(figures["spent"])),
        held=Decimal(str(figures["held"])),
        warned=False,
    )
    return BudgetExceeded(status=status, required=Decimal(str(figures.get("share", required))))


def budget_shares_settle(*, shares: list[dict], debited: Decimal | None, kept: Decimal = ZERO) -> list[dict]:
    """Settle (``debited``: what the hold's commit charged) or release (None) a hold's budget shares,
    inside the caller's transaction, after the credit account (lock order: account, then periods).
    ``kept``: the summary's part stays held, moved to the summary's hold — its shares are returned.
    The same rule as the turn's commit statement (``orchestration/turns/store.py``)."""
    moved = []
    for share in shares:
        amount = Decimal(str(share["a"]))
        keep = min(Decimal(str(share.get("s", 0))), kept)
        spent = min(amount - keep, debited) if debited is not None else ZERO
        BudgetUsage.objects.filter(pk=share["u"]).update(
            held=F("held") - (amount - keep), spent=F("spent") + spent
        )
        if keep:
            moved.append({"u": share["u"], "a": str(keep), "s": "0", "m": share.get("m", "")})
    return moved


def budget_warnings_raise(*, user_id: int, room_id=None, api_key_id: int | None = None) -> list[BudgetStatus]:
    """The budgets of a turn whose period just reached ``BUDGET_SOFT_LIMIT_SHARE`` of its limit
    (spent and held), each once per period: the conditional UPDATE that marks it (``warned_at IS
    NULL``) decides, so two turns never both warn. Each is logged and counted; the caller sends
    the webhook."""
    budgets = list(budgets_applicable(user_id=user_id, room_id=room_id, api_key_id=api_key_id))
    if not budgets:
        return []
    share = Decimal(str(settings.BUDGET_SOFT_LIMIT_SHARE))
    now = timezone.now()
    warned = []
    for status in budget_statuses(budgets, now=now):
        b = status.budget
        if status.warned or status.spent + status.held < b.limit_credits * share:
            continue
        if BudgetUsage.objects.filter(
            budget_id=b.pk, period_start=status.period_start, warned_at__isnull=True
        ).update(warned_at=now):
            warned.append(status)
            _warn(status)
    return warned


def budget_warnings_current(*, user_id: int) -> list[dict]:
    """The user's budgets past their soft limit in their current period (for ``/auth/me``)."""
    share = Decimal(str(settings.BUDGET_SOFT_LIMIT_SHARE))
    return [
        s.as_dict()
        for s in budget_statuses(Budget.objects.filter(user_id=user_id).order_by("id"))
        if s.budget.limit_credits and s.spent + s.held >= s.budget.limit_credits * share
    ]


def _warn(status: BudgetStatus) -> None:
    b = status.budget
    logger.warning(
        "budget soft limit reached: budget=%s user=%s %s %s: %s of %s used",
        b.pk,
        b.user_id,
        b.scope_label,
        b.period,
        status.spent + status.held,
        b.limit_credits,
    )
    observe(BudgetWarned(budget_id=b.pk, scope=b.scope, period=b.period))


class BudgetLooserThanOperator(InvalidInput):
    code = "budget_looser_than_operator"


def budget_user_set(
    *,
    user,
    room_id=None,
    api_key_id: int | None = None,
    period: str,
    limit_credits: Decimal,
    model_alias: str = "",
) -> Budget:
    """A user's own, tighter limit on one of their rooms or keys (the caller checked the ownership).
    It applies beside the operator's budgets, never instead, and may not be looser than any of them
    that binds the same turns over the same period."""
    if (room_id is None) == (api_key_id is None):
        raise InvalidInput("Set a budget on one room (room_id) or one API key (api_key_id).")
    if limit_credits < 0:
        raise InvalidInput.for_field("limit_credits", "must not be negative.")
    binding = (
        budgets_applicable(user_id=user.pk, room_id=room_id, api_key_id=api_key_id)
        .filter(set_by=Budget.SetBy.OPERATOR, period=period)
        .filter(Q(model_alias="") | Q(model_alias=model_alias))
        .order_by("limit_credits")
        .first()
    )
    if binding is not None and limit_credits > binding.limit_credits:
        raise BudgetLooserThanOperator(
            f"The operator's {ADJECTIVE[period]} budget on {binding.scope_label} is "
            f"{credits_display(binding.limit_credits)} credits: yours may only be tighter.",
            extra={
                "fields": {"limit_credits": ["looser than the operator's"]},
                "operator_budget": binding.pk,
            },
        )
    return Budget.objects.create(
        user=user,
        room_id=room_id,
        api_key_id=api_key_id,
        period=period,
        limit_credits=limit_credits,
        model_alias=model_alias,
        set_by=Budget.SetBy.USER,
    )


def budget_user_delete(*, budget: Budget) -> None:
    """Users remove only the budgets they set; the operator's stay."""
    if budget.set_by != Budget.SetBy.USER:
        raise Forbidden("This budget was set by an operator.")
    budget.delete()


def budget_webhook_signature(body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body with ``BUDGET_WEBHOOK_SECRET``."""
    return "sha256=" + hmac.new(settings.BUDGET_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def budget_webhook_post(*, payload: dict) -> None:
    """POST a notice to ``BUDGET_WEBHOOK_URL`` with its signature in ``X-Pantheon-Signature``;
    raises on a network error or a non-2xx answer (the task retries)."""
    body = json.dumps(payload, sort_keys=True).encode()
    response = httpx2.post(
        settings.BUDGET_WEBHOOK_URL,
        content=body,
        headers={"Content-Type": "application/json", "X-Pantheon-Signature": budget_webhook_signature(body)},
        timeout=10,
    )
    response.raise_for_status()


def budget_operator_set(
    *,
    user,
    period: str,
    limit_credits: Decimal | str,
    room_id=None,
    api_key_id: int | None = None,
    model_alias: str = "",
) -> tuple[Budget, bool]:
    """Set an operator's budget (the one of that user, target, period and model, made if missing).
    Returns ``(budget, created)``."""
    try:
        limit = Decimal(str(limit_credits))
    except ArithmeticError as exc:
        raise InvalidInput.for_field("limit_credits", "must be a number of credits.") from exc
    if not limit.is_finite() or limit < 0 or limit != limit.quantize(Decimal("0.0001")):
        raise InvalidInput.for_field("limit_credits", "must be ≥ 0 with at most 4 decimal places.")
    if period not in Budget.Period.values:
        raise InvalidInput.for_field("period", f"use one of: {', '.join(Budget.Period.values)}.")
    if room_id is not None and api_key_id is not None:
        raise InvalidInput("A budget applies to one room or one API key, not both.")
    return Budget.objects.update_or_create(
        user=user,
        room_id=room_id,
        api_key_id=api_key_id,
        period=period,
        model_alias=model_alias,
        set_by=Budget.SetBy.OPERATOR,
        defaults={"limit_credits": limit},
    )
