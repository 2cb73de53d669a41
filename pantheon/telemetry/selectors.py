"""The figures a metrics scrape reads from the database."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from orchestration.selectors import summaries_due
from usage.models import CreditHold, LlmCallEvent


@dataclass(frozen=True)
class TelemetryFigures:
    holds: dict[str, tuple[int, Decimal]]  # kind → (holds outstanding, credits held)
    holds_expired: int
    summaries_due: int
    today_by_model: dict[str, tuple[Decimal, Decimal]]  # model alias → (cost USD, credits burned)


def telemetry_figures() -> TelemetryFigures:
    now = timezone.now()
    holds = {kind: (0, Decimal(0)) for kind in CreditHold.Kind.values}
    expired = 0
    for row in CreditHold.objects.values("kind").annotate(
        n=Count("id"), credits=Sum("amount"), expired=Count("id", filter=Q(expires_at__lt=now))
    ):
        holds[row["kind"]] = (row["n"], row["credits"] or Decimal(0))
        expired += row["expired"]
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = {
        row["model_alias"]: (row["cost"] or Decimal(0), row["credits"] or Decimal(0))
        for row in LlmCallEvent.objects.filter(created_at__gte=midnight)
        .values("model_alias")
        .annotate(cost=Sum("cost_usd"), credits=Sum("credits_burned"))
        .order_by()
    }
    return TelemetryFigures(
        holds=holds, holds_expired=expired, summaries_due=len(summaries_due()), today_by_model=today
    )
