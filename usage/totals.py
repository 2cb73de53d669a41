"""Aggregates over usage events (one query), shared by the session usage endpoint and reports."""

from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from usage.models import LlmCallEvent

ZERO = Decimal(0)


def usage_events_for_session(*, session_id) -> QuerySet[LlmCallEvent]:
    return LlmCallEvent.objects.filter(session_id=session_id).order_by("created_at", "id")


def usage_totals(*, events: QuerySet[LlmCallEvent]) -> dict:
    # Aggregate aliases must not shadow the model's field names, hence the prefix.
    totals = events.aggregate(
        t_events=Count("id"),
        t_failed=Count("id", filter=Q(status=LlmCallEvent.Status.FAILED)),
        t_input_tokens=Coalesce(Sum("input_tokens"), 0),
        t_output_tokens=Coalesce(Sum("output_tokens"), 0),
        t_oe_tokens=Coalesce(Sum("oe_tokens"), 0),
        t_cost_usd=Coalesce(Sum("cost_usd"), ZERO),
        t_billable_cost_usd=Coalesce(Sum("cost_usd", filter=Q(billable=True)), ZERO),
        t_credits_burned=Coalesce(Sum("credits_burned"), ZERO),
        t_provider_cost_usd=Coalesce(Sum("provider_cost_usd"), ZERO),
    )
    return {key.removeprefix("t_"): value for key, value in totals.items()}
