"""The usage review's pieces above the event list: the date range filter, spend per user, room and
model, and the daily chart's data (drawn by ``usage/static/usage/cost-chart.js``). Totals come from
``usage.selectors.usage_totals``.

Usage refers to rooms, sessions and turns by id only (the app knows no other of ours); their names
come from resolvers that the apps owning them register (``review_names_register``), so the review
shows names where the data holds UUIDs.
"""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from usage.formatting import credits_display, usd_display
from usage.models import Budget
from usage.selectors import USAGE_AGGREGATES
from usage.services.budgets import budget_statuses

ZERO = Decimal(0)
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
CHART_MAX_DAYS = 92
GROUP_ROWS = 10


# --- names instead of UUIDs ---------------------------------------------------------------------
# kind → (resolver: ids → {id: label}, admin URL name of the object's change page)
NameResolver = Callable[[set[uuid.UUID]], dict[uuid.UUID, str]]
_resolvers: dict[str, tuple[NameResolver, str]] = {}


def review_names_register(kind: str, *, resolve: NameResolver, admin_url_name: str) -> None:
    """Let the review show ``kind`` ids (``room``, ``session``, ``turn``) by name, linked to their
    admin page. ``resolve`` answers with one query for any number of ids and marks deleted ones."""
    _resolvers[kind] = (resolve, admin_url_name)


def review_names(kind: str, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Labels of ``ids``: the registered resolver's, or the short id marked as removed."""
    wanted = {i for i in ids if i is not None}
    resolve = _resolvers.get(kind, (lambda ids: {}, ""))[0]
    found = resolve(wanted) if wanted else {}
    return {i: found.get(i) or f"{kind} {str(i)[:8]} (removed)" for i in wanted}


def review_link(kind: str, object_id: uuid.UUID | None, labels: dict[uuid.UUID, str]) -> tuple[str, str]:
    """(label, admin URL or "") of one referenced object; no URL for what no longer exists."""
    if object_id is None:
        return "", ""
    label = labels.get(object_id, str(object_id))
    url_name = _resolvers.get(kind, (None, ""))[1]
    if not url_name or label.endswith("(removed)"):
        return label, ""
    try:
        return label, reverse(url_name, args=[object_id])
    except NoReverseMatch:
        return label, ""


# --- date range ---------------------------------------------------------------------------------
class DateRangeFilter(admin.ListFilter):
    """From/to days (inclusive, server time zone) typed into two date fields, with quick ranges."""

    title = "date range"
    template = "admin/usage/date_range_filter.html"
    field = "created_at"
    start_param = "created_from"
    end_param = "created_to"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in (self.start_param, self.end_param):
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1]
        self.start = self._day(request, self.start_param, "from")
        self.end = self._day(request, self.end_param, "to")
        if self.start and self.end and self.start > self.end:
            self._say(
                request,
                f"The range ends before it starts ({self.start} to {self.end}): "
                f"showing {self.end} to {self.start}.",
            )
            self.start, self.end = self.end, self.start

    def _day(self, request, name: str, label: str) -> date | None:
        """The typed day; one that is not a date is left out, and the page says so."""
        value = self.used_parameters.get(name)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.used_parameters.pop(name)
            self._say(
                request,
                f"“{value}” is not a date (YYYY-MM-DD): the list is not limited by its “{label}” day.",
            )
            return None

    @staticmethod
    def _say(request, message: str) -> None:
        """A warning on the page, once a request (the filter is built again for the CSV export)."""
        said = request.__dict__.setdefault("_date_range_said", set())
        if message not in said:
            said.add(message)
            messages.warning(request, message)

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [self.start_param, self.end_param]

    def queryset(self, request, queryset):
        if self.start:
            queryset = queryset.filter(**{f"{self.field}__gte": _day_start(self.start)})
        if self.end:
            queryset = queryset.filter(**{f"{self.field}__lt": _day_start(self.end + timedelta(days=1))})
        return queryset

    def choices(self, changelist):
        today = timezone.localdate()
        month_start = today.replace(day=1)
        last_month_end = month_start - timedelta(days=1)
        quick = [
            ("Today", today, today),
            ("Last 7 days", today - timedelta(days=6), today),
            ("Last 30 days", today - timedelta(days=29), today),
            ("This month", month_start, today),
            ("Last month", last_month_end.replace(day=1), last_month_end),
        ]
        for label, start, end in quick:
            yield {
                "display": label,
                "selected": (self.start, self.end) == (start, end),
                "query_string": changelist.get_query_string(
                    {self.start_param: start.isoformat(), self.end_param: end.isoformat()}
                ),
            }

    def form_context(self) -> dict:
        """What the filter's own GET form needs: the typed days and the other parameters to keep."""
        keep = [
            (k, v)
            for k, values in self.request.GET.lists()
            if k not in (self.start_param, self.end_param, "p", "e")
            for v in values
        ]
        return {
            "start": self.start.isoformat() if self.start else "",
            "end": self.end.isoformat() if self.end else "",
            "keep": keep,
            "clear": not (self.start or self.end),
        }


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# --- spend per user, room and model -------------------------------------------------------------
# The shared aggregates (usage.selectors), under names that do not shadow the model's fields.
SPEND = {
    "events": USAGE_AGGREGATES["events"],
    "cost": USAGE_AGGREGATES["cost_usd"],
    "billed": USAGE_AGGREGATES["billed_cost_usd"],
    "credits": USAGE_AGGREGATES["credits_burned"],
}


def review_spend_groups(queryset: QuerySet, *, changelist, total: Decimal) -> list[dict]:
    """Three tables (per user, room, model) of the filter's biggest spenders first, each row with
    the link that narrows the list to it and its share of ``total`` (the filter's cost)."""
    groups = []
    for title, key, param, label_of in (
        ("user", "user__username", "user__id__exact", None),
        ("room", "room_id", "room", "room"),
        ("model", "model_alias", "model_alias", None),
    ):
        values = [key, "user_id"] if title == "user" else [key]
        rows = list(queryset.order_by().values(*values).annotate(**SPEND).order_by("-cost", key))
        labels = review_names(label_of, [r[key] for r in rows[:GROUP_ROWS]]) if label_of else {}
        table = []
        for r in rows[:GROUP_ROWS]:
            value = r["user_id"] if title == "user" else r[key]
            table.append(
                {
                    "label": "(none)" if value is None else labels.get(value, str(r[key])),
                    "query_string": "" if value is None else changelist.get_query_string({param: value}),
                    "events": r["events"],
                    "cost": usd_display(r["cost"]),
                    "billed": usd_display(r["billed"]),
                    "credits": credits_display(r["credits"]),
                    "share": f"{r['cost'] / total:.0%}" if total else "—",
                }
            )
        groups.append({"title": title, "rows": table, "more": max(len(rows) - GROUP_ROWS, 0)})
    return groups


# --- the daily chart ----------------------------------------------------------------------------
def review_daily_series(queryset: QuerySet, *, start: date | None = None, end: date | None = None) -> dict:
    """Cost per calendar day and model, every day of the range present (days without usage are 0,
    so the axis never skips time). The range is the filter's dates, else the first to the last day
    with usage; at most ``CHART_MAX_DAYS``, the newest kept."""
    rows = list(
        queryset.annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("day", "model_alias")
        .annotate(cost=SPEND["cost"])
    )
    if not rows and not (start and end):
        return {"days": [], "series": [], "truncated": False}
    end = end or max(r["day"] for r in rows)
    start = start or min(r["day"] for r in rows)
    truncated = (end - start).days + 1 > CHART_MAX_DAYS
    if truncated:
        start = end - timedelta(days=CHART_MAX_DAYS - 1)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    cost: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for r in rows:
        if start <= r["day"] <= end:
            cost[r["model_alias"]][r["day"]] = r["cost"]
    models = sorted(cost, key=lambda m: -sum(cost[m].values()))
    return {
        "days": [d.isoformat() for d in days],
        "series": [
            {
                "model": model,
                "color": PALETTE[i % len(PALETTE)],
                "values": [f"{cost[model].get(d, ZERO):f}" for d in days],
            }
            for i, model in enumerate(models)
        ],
        "truncated": truncated,
    }


# --- budgets ------------------------------------------------------------------------------------
BUDGET_BARS = 50


def review_budget_bars() -> list[dict]:
    """A bar per budget for its current period: spent and held as shares of the limit (the fullest
    first, at most ``BUDGET_BARS``)."""
    statuses = budget_statuses(Budget.objects.select_related("user").order_by("user_id", "id"))
    rooms = review_names("room", [s.budget.room_id for s in statuses])
    bars = []
    for status in sorted(statuses, key=lambda s: s.used_share, reverse=True)[:BUDGET_BARS]:
        b, limit = status.budget, status.budget.limit_credits
        target = rooms.get(b.room_id) or (f"API key {b.api_key_id}" if b.api_key_id else "all turns")
        bars.append(
            {
                "label": f"{b.user.username} — {target}" + (f" ({b.model_alias})" if b.model_alias else ""),
                "period": b.period,
                "limit": credits_display(limit),
                "spent": credits_display(status.spent),
                "held": credits_display(status.held),
                "spent_pct": _pct(status.spent, limit),
                "held_pct": min(_pct(status.held, limit), 100 - _pct(status.spent, limit)),
                "resets_at": status.resets_at,
            }
        )
    return bars


def _pct(part: Decimal, whole: Decimal) -> int:
    return 100 if not whole else min(int(part * 100 / whole), 100)
