"""Keeping the catalog in step with the provider's own model list (windows, output limits, prices).

Prices are never edited in place: a change publishes a new price list and activates it, so every
usage event keeps the version it was priced with.
"""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from usage.metering import Price
from usage.models import PRICE_RATES, LlmModel, ModelPrice, PricingVersion
from usage.provider import provider_models_get
from usage.selectors import price_of
from usage.services.pricing import pricing_version_activate

MILLION = Decimal(1_000_000)


@dataclass
class CatalogChange:
    alias: str
    field: str
    old: object
    new: object


@dataclass
class CatalogSyncReport:
    changes: list[CatalogChange] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # catalog models the provider does not list
    new_pricing_version: str | None = None


def _per_million(value) -> Decimal | None:
    try:
        return (Decimal(str(value)) * MILLION).normalize()
    except (InvalidOperation, TypeError):
        return None


# OpenRouter's per-token prices, by the rate of a price list entry they set. The cache and reasoning
# rates are optional: one the provider does not list stays empty (the input or output rate).
CARD_RATES = {
    "input_usd_per_million": "prompt",
    "output_usd_per_million": "completion",
    "cached_input_usd_per_million": "input_cache_read",
    "cache_write_usd_per_million": "input_cache_write",
    "reasoning_usd_per_million": "internal_reasoning",
}
RATE_LABELS = dict(zip(CARD_RATES, ("in", "out", "cached", "cache write", "reasoning"), strict=True))


def _card_rates(pricing: dict) -> dict[str, Decimal | None] | None:
    """A model card's rates per million tokens; None without an input and an output price."""
    rates = {rate: _per_million(pricing.get(name)) for rate, name in CARD_RATES.items()}
    if rates["input_usd_per_million"] is None or rates["output_usd_per_million"] is None:
        return None
    return rates


def _effective(price: Price) -> tuple[Decimal, ...]:
    """Every rate as charged (an empty cache or reasoning rate is the input or output rate)."""
    return (
        price.input_usd_per_million,
        price.output_usd_per_million,
        price.cached_input,
        price.cache_write,
        price.reasoning,
    )


def _apart(rates: tuple[Decimal, ...] | None, index: int) -> bool:
    """A cache (index 2, 3) or reasoning (4) rate other than the input (0) or output (1) rate."""
    return rates is not None and rates[index] != rates[1 if index == 4 else 0]


def _rates_display(rates: tuple[Decimal, ...], shown: list[str]) -> str:
    order = list(CARD_RATES)
    return " / ".join(str(rates[order.index(r)].normalize()) for r in shown)


def catalog_sync(*, apply: bool) -> CatalogSyncReport:
    """Compare the active catalog with the provider's list; with ``apply``, write the differences."""
    listed = provider_models_get()
    report = CatalogSyncReport()
    active = PricingVersion.objects.filter(is_active=True).first()
    current = {p.model_id: p for p in ModelPrice.objects.filter(version=active)} if active else {}
    new_prices: dict[int, dict[str, Decimal]] = {}

    for model in LlmModel.objects.filter(is_active=True).order_by("alias"):
        card = listed.get(model.provider_model)
        if card is None:
            report.missing.append(model.alias)
            continue
        window = card.get("context_length")
        max_out = (card.get("top_provider") or {}).get("max_completion_tokens")
        for name, value in (("context_window", window), ("max_output_tokens", max_out)):
            if isinstance(value, int) and value > 0 and getattr(model, name) != value:
                report.changes.append(CatalogChange(model.alias, name, getattr(model, name), value))
                if apply:
                    setattr(model, name, value)
        if apply:
            model.save(update_fields=["context_window", "max_output_tokens", "updated_at"])
        rates = _card_rates(card.get("pricing") or {})
        if rates is None:
            continue
        price = current.get(model.pk)
        old = _effective(price_of(price)) if price else None
        new = _effective(price_of(ModelPrice(**rates)))
        if old != new:  # Decimal equality ignores trailing zeros (0.300000 == 0.3)
            # In and out always; a cache or reasoning rate when it is listed or not its base rate.
            shown = [
                r
                for i, r in enumerate(CARD_RATES)
                if i < 2 or rates[r] is not None or _apart(old, i) or _apart(new, i)
            ]
            label = "USD per million " + " / ".join(RATE_LABELS[r] for r in shown)
            was = _rates_display(old, shown) if old else "none"
            report.changes.append(CatalogChange(model.alias, label, was, _rates_display(new, shown)))
            new_prices[model.pk] = rates

    if apply and new_prices:
        report.new_pricing_version = _pricing_publish(current=current, changed=new_prices)
    return report


@transaction.atomic
def _pricing_publish(*, current: dict[int, ModelPrice], changed: dict[int, dict[str, Decimal | None]]) -> str:
    """A new active price list: the current prices with the provider's changes applied."""
    name = f"sync-{timezone.now():%Y%m%d-%H%M%S}"
    version = PricingVersion.objects.create(name=name, notes="Synced from the provider's model list.")
    prices = {model_id: {rate: getattr(p, rate) for rate in PRICE_RATES} for model_id, p in current.items()}
    prices.update(changed)
    ModelPrice.objects.bulk_create(
        ModelPrice(version=version, model_id=model_id, **rates) for model_id, rates in prices.items()
    )
    # Prices the provider does not list stay as they were, missing ones included.
    pricing_version_activate(version=version, require_complete=False)
    return name
