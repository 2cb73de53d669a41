"""Reads of the catalog, prices, credits and usage: every query of the usage app that returns data."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from usage.metering import Price
from usage.models import CreditAccount, LlmCallEvent, LlmModel, ModelPrice, PricingVersion

ZERO = Decimal(0)


@dataclass(frozen=True)
class PricedModel:
    """An active catalog model with its price in the active price list."""

    alias: str
    provider_model: str
    context_window: int
    max_output_tokens: int
    price: Price


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


def catalog_aliases_active() -> list[tuple[str, str]]:
    """(alias, "alias — display name") of every active catalog model, by alias: a form's choices."""
    models = LlmModel.objects.filter(is_active=True).order_by("alias").values_list("alias", "display_name")
    return [(alias, f"{alias} — {name}" if name and name != alias else alias) for alias, name in models]


def catalog_model_get_active(*, alias: str) -> LlmModel | None:
    """The active catalog model with this alias, or None (unknown or deactivated)."""
    return LlmModel.objects.filter(alias=alias, is_active=True).first()


def priced_models_get(*, aliases: set[str]) -> dict[str, PricedModel]:
    """Active catalog models with their price in the active price list, by alias (one query each
    for the models and their prices, whatever the number of aliases).

    A model without a price in the active list is priced at zero; an inactive or unknown alias is
    simply absent.
    """
    models = {m.alias: m for m in LlmModel.objects.filter(alias__in=aliases, is_active=True)}
    prices = {
        p.model_id: p for p in ModelPrice.objects.filter(model__alias__in=models, version__is_active=True)
    }
    result: dict[str, PricedModel] = {}
    for alias, model in models.items():
        p = prices.get(model.pk)
        price = (
            Price(p.input_usd_per_million, p.output_usd_per_million, p.version_id)
            if p
            else Price(ZERO, ZERO, None)
        )
        result[alias] = PricedModel(
            alias=alias,
            provider_model=model.provider_model,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            price=price,
        )
    return result


# The aggregates of a set of usage events, defined once: the usage endpoints, /auth/me, the admin
# review and the daily rollups all read these. ``cost_usd`` is the cost of every call (what the
# provider charges); ``billed_cost_usd`` and ``credits_burned`` are what the user was charged.
USAGE_AGGREGATES = {
    "events": Count("id"),
    "failed_events": Count("id", filter=Q(status=LlmCallEvent.Status.FAILED)),
    "input_tokens": Coalesce(Sum("input_tokens"), 0),
    "output_tokens": Coalesce(Sum("output_tokens"), 0),
    "oe_tokens": Coalesce(Sum("oe_tokens"), 0),
    "cost_usd": Coalesce(Sum("cost_usd"), ZERO),
    "billed_cost_usd": Coalesce(Sum("cost_usd", filter=Q(billable=True)), ZERO),
    "credits_burned": Coalesce(Sum("credits_burned"), ZERO),
    "credits_unbilled": Coalesce(Sum("credits_unbilled"), ZERO),
    "provider_cost_usd": Coalesce(Sum("provider_cost_usd"), ZERO),
    "drift_events": Count("id", filter=Q(reconciliation=LlmCallEvent.Reconciliation.DRIFT)),
}


def usage_totals(*, events: QuerySet[LlmCallEvent]) -> dict:
    """The ``USAGE_AGGREGATES`` of ``events``, in one query."""
    # Aggregate aliases must not shadow the model's field names, hence the prefix.
    totals = events.order_by().aggregate(**{f"t_{name}": agg for name, agg in USAGE_AGGREGATES.items()})
    return {key.removeprefix("t_"): value for key, value in totals.items()}


def usage_events_for_session(*, session_id) -> QuerySet[LlmCallEvent]:
    return (
        LlmCallEvent.objects.filter(session_id=session_id)
        .select_related("pricing_version")
        .order_by("created_at", "id")
    )


def credit_account_figures(*, user_id: int) -> dict[str, Decimal]:
    """``credit_balance``, ``credits_held`` (reserved by turns and summaries in flight) and
    ``credits_available`` (balance − held: what a new turn may reserve)."""
    row = CreditAccount.objects.filter(user_id=user_id).values_list("balance", "held").first()
    balance, held = row if row else (ZERO, ZERO)
    return {"credit_balance": balance, "credits_held": held, "credits_available": balance - held}


def user_usage_summary(*, user: AbstractBaseUser) -> dict:
    """The user's credits (balance, held, available) and the totals of every LLM call recorded for
    them (see ``USAGE_AGGREGATES`` for what each figure means)."""
    return {
        **credit_account_figures(user_id=user.pk),
        "usage": usage_totals(events=LlmCallEvent.objects.filter(user=user)),
    }
