"""The daily cost per model chart above the usage review's event list (totals: usage.totals)."""

from collections import defaultdict
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

ZERO = Decimal(0)
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
CHART_DAYS = 31


def review_daily_chart(queryset: QuerySet, *, width: int = 900, height: int = 220) -> dict:
    """Stacked bars of cost per day and model for the newest ``CHART_DAYS`` days of the filter."""
    rows = list(
        queryset.annotate(day=TruncDate("created_at"))
        .values("day", "model_alias")
        .annotate(cost=Coalesce(Sum("cost_usd"), ZERO))
        .order_by("-day")
    )
    days = sorted({r["day"] for r in rows})[-CHART_DAYS:]
    models = sorted({r["model_alias"] for r in rows if r["day"] in days})
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    per_day: dict = defaultdict(dict)
    for r in rows:
        if r["day"] in days:
            per_day[r["day"]][r["model_alias"]] = r["cost"]
    peak = max((sum(v.values(), ZERO) for v in per_day.values()), default=ZERO) or Decimal(1)
    bar = min(width / max(len(days), 1), 48)
    bars = []
    for i, day in enumerate(days):
        y = float(height)
        for model in models:
            cost = per_day[day].get(model, ZERO)
            if not cost:
                continue
            h = float(cost / peak) * (height - 20)
            y -= h
            bars.append(
                {
                    "x": round(i * bar + 2, 1),
                    "y": round(y, 1),
                    "w": round(max(bar - 4, 1), 1),
                    "h": round(h, 1),
                    "color": colors[model],
                    "title": f"{day} {model}: {cost.normalize()} USD",
                }
            )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "legend": [{"model": m, "color": c} for m, c in colors.items()],
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        "peak": peak.normalize() if rows else ZERO,
    }
