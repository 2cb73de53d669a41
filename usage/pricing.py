"""Catalog and price lookups for metering: one query for every model a turn may call."""

from dataclasses import dataclass
from decimal import Decimal

from usage.metering import Price
from usage.models import LlmModel, ModelPrice


@dataclass(frozen=True)
class PricedModel:
    alias: str
    provider_model: str
    context_window: int
    max_output_tokens: int
    price: Price


def priced_models_get(*, aliases: set[str]) -> dict[str, PricedModel]:
    """Active catalog models with their price in the active price list, by alias.

    A model without a price in the active list is priced at zero (and logged by the caller's admin
    review as such); an inactive or unknown alias is simply absent.
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
            else Price(Decimal(0), Decimal(0), None)
        )
        result[alias] = PricedModel(
            alias=alias,
            provider_model=model.provider_model,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            price=price,
        )
    return result
