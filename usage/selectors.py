"""Reads of the catalog, prices and a user's usage."""

from decimal import Decimal

from django.db.models import Count, Prefetch, QuerySet, Sum
from django.db.models.functions import Coalesce

from usage.models import CreditAccount, LlmCallEvent, LlmModel, ModelPrice


def catalog_list_active() -> QuerySet[LlmModel]:
    """Active catalog models, each with ``active_prices`` (the active price list's row, if any)."""
    return LlmModel.objects.filter(is_active=True).prefetch_related(
        Prefetch(
            "prices",
            queryset=ModelPrice.objects.filter(version__is_active=True).select_related("version"),
            to_attr="active_prices",
        )
    )


def catalog_alias_is_active(*, alias: str) -> bool:
    return LlmModel.objects.filter(alias=alias, is_active=True).exists()


def user_usage_summary(*, user) -> dict:
    balance = CreditAccount.objects.filter(user=user).values_list("balance", flat=True).first()
    totals = LlmCallEvent.objects.filter(user=user).aggregate(
        t_events=Count("id"),
        t_input=Coalesce(Sum("input_tokens"), 0),
        t_output=Coalesce(Sum("output_tokens"), 0),
        t_cost=Coalesce(Sum("cost_usd"), Decimal(0)),
        t_credits=Coalesce(Sum("credits_burned"), Decimal(0)),
    )
    return {
        "credit_balance": balance if balance is not None else Decimal(0),
        "usage": {
            "events": totals["t_events"],
            "input_tokens": totals["t_input"],
            "output_tokens": totals["t_output"],
            "cost_usd": totals["t_cost"],
            "credits_burned": totals["t_credits"],
        },
    }
