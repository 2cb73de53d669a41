"""Reads of the catalog, prices and a user's usage."""

from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, QuerySet

from usage.models import CreditAccount, LlmCallEvent, LlmModel, ModelPrice, PricingVersion
from usage.totals import usage_totals


def pricing_active_get() -> PricingVersion | None:
    """The active price list (a constraint keeps it to one), or None before any is published."""
    return PricingVersion.objects.filter(is_active=True).first()


def catalog_list_active(*, pricing: PricingVersion | None) -> QuerySet[LlmModel]:
    """Active catalog models by alias, each with ``active_prices``: its row in ``pricing`` (0 or 1)."""
    prices = ModelPrice.objects.filter(version=pricing) if pricing else ModelPrice.objects.none()
    return (
        LlmModel.objects.filter(is_active=True)
        .order_by("alias")
        .prefetch_related(Prefetch("prices", queryset=prices, to_attr="active_prices"))
    )


def catalog_model_get_active(*, alias: str) -> LlmModel | None:
    """The active catalog model with this alias, or None (unknown or deactivated)."""
    return LlmModel.objects.filter(alias=alias, is_active=True).first()


def user_usage_summary(*, user: AbstractBaseUser) -> dict:
    """The user's credit balance and the totals of every LLM call recorded for them.

    ``cost_usd`` counts every call (routing included); ``billable_cost_usd`` and ``credits_burned``
    are what the user was charged for.
    """
    balance = CreditAccount.objects.filter(user=user).values_list("balance", flat=True).first()
    return {
        "credit_balance": balance if balance is not None else Decimal(0),
        "usage": usage_totals(events=LlmCallEvent.objects.filter(user=user)),
    }
