"""Keeping the catalog in step with the provider's own model list (windows, output limits, prices).

Prices are never edited in place: a change publishes a new price list and activates it, so every
usage event keeps the version it was priced with.
"""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from usage.models import LlmModel, ModelPrice, PricingVersion
from usage.provider import provider_models_get
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


def catalog_sync(*, apply: bool) -> CatalogSyncReport:
    """Compare the active catalog with the provider's list; with ``apply``, write the differences."""
    listed = provider_models_get()
    report = CatalogSyncReport()
    active = PricingVersion.objects.filter(is_active=True).first()
    current = {p.model_id: p for p in ModelPrice.objects.filter(version=active)} if active else {}
    new_prices: dict[int, tuple[Decimal, Decimal]] = {}

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
        pricing = card.get("pricing") or {}
        p_in, p_out = _per_million(pricing.get("prompt")), _per_million(pricing.get("completion"))
        if p_in is None or p_out is None:
            continue
        price = current.get(model.pk)
        old = (price.input_usd_per_million, price.output_usd_per_million) if price else None
        if old != (p_in, p_out):  # Decimal equality ignores trailing zeros (0.300000 == 0.3)
            shown = f"{old[0].normalize()} / {old[1].normalize()}" if old else "none"
            report.changes.append(
                CatalogChange(model.alias, "USD per million in / out", shown, f"{p_in} / {p_out}")
            )
            new_prices[model.pk] = (p_in, p_out)

    if apply and new_prices:
        report.new_pricing_version = _pricing_publish(current=current, changed=new_prices)
    return report


@transaction.atomic
def _pricing_publish(*, current: dict[int, ModelPrice], changed: dict[int, tuple[Decimal, Decimal]]) -> str:
    """A new active price list: the current prices with the provider's changes applied."""
    name = f"sync-{timezone.now():%Y%m%d-%H%M%S}"
    version = PricingVersion.objects.create(name=name, notes="Synced from the provider's model list.")
    prices = {
        model_id: (p.input_usd_per_million, p.output_usd_per_million) for model_id, p in current.items()
    }
    prices.update(changed)
    ModelPrice.objects.bulk_create(
        ModelPrice(
            version=version, model_id=model_id, input_usd_per_million=p_in, output_usd_per_million=p_out
        )
        for model_id, (p_in, p_out) in prices.items()
    )
    # Prices the provider does not list stay as they were, missing ones included.
    pricing_version_activate(version=version, require_complete=False)
    return name
