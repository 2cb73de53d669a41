"""Price lists change by new versions: an active (or once active) list is never edited, it is copied
into a draft, the draft is edited, then activated. Every usage event keeps the version it was priced
with, so past costs never move."""

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from usage.errors import PriceListIncomplete
from usage.models import PRICE_RATES, LlmModel, ModelPrice, PricingVersion

NAME_MAX_LENGTH = PricingVersion._meta.get_field("name").max_length


def _name_free(base: str) -> str:
    base = base[:NAME_MAX_LENGTH]
    name, n = base, 1
    while PricingVersion.objects.filter(name=name).exists():
        n += 1
        suffix = f" ({n})"
        name = base[: NAME_MAX_LENGTH - len(suffix)] + suffix
    return name


@transaction.atomic
def pricing_version_copy(*, version: PricingVersion, name: str = "") -> PricingVersion:
    """An inactive draft with the same prices as ``version``, to edit and then activate."""
    draft = PricingVersion.objects.create(
        name=_name_free(name or f"{version.name} draft {timezone.now():%Y-%m-%d %H:%M}"),
        notes=f"Copied from {version.name}.",
    )
    ModelPrice.objects.bulk_create(
        ModelPrice(
            version=draft,
            model_id=price.model_id,
            **{rate: getattr(price, rate) for rate in PRICE_RATES},
        )
        for price in version.prices.all()
    )
    return draft


@transaction.atomic
def pricing_version_activate(*, version: PricingVersion, require_complete: bool = True) -> PricingVersion:
    """Make ``version`` the one active price list. The switch is one transaction: every turn
    committed before it was priced with the old list, every one after with the new one; the old list
    is kept, frozen. With ``require_complete`` an active catalog model without a price in
    ``version`` refuses the switch (``PriceListIncomplete``): it would be served for free.
    """
    # Every price list locked: simultaneous activations queue instead of colliding on the
    # one-active constraint; the last one wins.
    list(PricingVersion.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
    if require_complete:
        unpriced = list(
            LlmModel.objects.filter(is_active=True)
            .exclude(prices__version=version)
            .order_by("alias")
            .values_list("alias", flat=True)
        )
        if unpriced:
            raise PriceListIncomplete(aliases=unpriced)
    PricingVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    PricingVersion.objects.filter(pk=version.pk).update(
        is_active=True, activated_at=Coalesce(F("activated_at"), timezone.now())
    )
    version.refresh_from_db()
    return version
