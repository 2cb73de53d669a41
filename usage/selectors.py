"""Reads of the catalog, prices, credits and usage: every query of the usage app that returns data."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from usage.calibration import ONE, calibration_ratio_effective, tokens_calibrated
from usage.metering import Price, price_worst
from usage.models import (
    AccountName,
    CreditAccount,
    LlmCallEvent,
    LlmDeployment,
    LlmModel,
    ModelPrice,
    PricingVersion,
)
from usage.usernames import username_normalize

ZERO = Decimal(0)


@dataclass(frozen=True)
class PricedDeployment:
    """Where a call may go: ``name`` "" is the configured provider (an alias with no deployments)."""

    name: str
    provider_model: str
    price: Price
    base_url: str = ""
    api_key_env: str = ""
    position: int = 0
    weight: int = 1


@dataclass(frozen=True)
class PricedModel:
    """An active catalog model with its price in the active price list and its active deployments."""

    alias: str
    provider_model: str
    context_window: int
    max_output_tokens: int
    price: Price
    deployments: tuple[PricedDeployment, ...] = ()
    # Its token calibration in effect (usage/calibration.py): 1 until it has been learned.
    token_ratio: Decimal = ONE

    def input_calibrated(self, tokens: int) -> int:
        """A local count of input tokens as this model's provider would count it (rounded up)."""
        return tokens_calibrated(tokens, self.token_ratio)

    @property
    def routes(self) -> tuple[PricedDeployment, ...]:
        """The deployments a call may go to, in order; without any, the configured provider."""
        return self.deployments or (PricedDeployment("", self.provider_model, self.price),)

    @property
    def worst_price(self) -> Price:
        """What a hold prices this model's calls at: no lower than any deployment's rate for any
        input or output token (cache writes and reasoning included), whichever answers."""
        return price_worst([route.price for route in self.routes])


def price_of(row: ModelPrice | None) -> Price:
    """A price list's row as the metering formula takes it; no row: free (and no version)."""
    if row is None:
        return Price(ZERO, ZERO, None)
    return Price(
        row.input_usd_per_million,
        row.output_usd_per_million,
        row.version_id,
        cached_input_usd_per_million=row.cached_input_usd_per_million,
        cache_write_usd_per_million=row.cache_write_usd_per_million,
        reasoning_usd_per_million=row.reasoning_usd_per_million,
    )


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
    models = {
        m.alias: m
        for m in LlmModel.objects.filter(alias__in=aliases, is_active=True).select_related(
            "token_calibration"
        )
    }
    deployments = list(
        LlmDeployment.objects.filter(model__in=models.values(), is_active=True).order_by("position", "name")
    )
    priced_ids = {m.pk for m in models.values()} | {d.price_model_id for d in deployments if d.price_model_id}
    prices = {
        p.model_id: p for p in ModelPrice.objects.filter(model_id__in=priced_ids, version__is_active=True)
    }
    result: dict[str, PricedModel] = {}
    for alias, model in models.items():
        calibration = getattr(model, "token_calibration", None)
        result[alias] = PricedModel(
            alias=alias,
            provider_model=model.provider_model,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            price=price_of(prices.get(model.pk)),
            token_ratio=calibration_ratio_effective(
                ratio=calibration.ratio if calibration else None,
                samples=calibration.samples if calibration else 0,
            ),
            deployments=tuple(
                PricedDeployment(
                    name=d.name,
                    provider_model=d.provider_model or model.provider_model,
                    price=price_of(prices.get(d.price_model_id or model.pk)),
                    base_url=d.base_url,
                    api_key_env=d.api_key_env,
                    position=d.position,
                    weight=d.weight,
                )
                for d in deployments
                if d.model_id == model.pk
            ),
        )
    return result


def _rate(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def price_from_json(row: dict | None) -> Price:
    """A price list row as the turn's single statement reads it (rates as text, never floats)."""
    if row is None or row.get("input") is None:
        return Price(ZERO, ZERO, None)
    return Price(
        Decimal(row["input"]),
        Decimal(row["output"]),
        row["version_id"],
        *(_rate(row[r]) for r in ("cached_input", "cache_write", "reasoning")),
    )


def priced_model_from_json(row: dict) -> PricedModel:
    """A ``PricedModel`` from the turn's single statement (``orchestration.turns.store``)."""
    return PricedModel(
        alias=row["alias"],
        provider_model=row["provider_model"],
        context_window=row["context_window"],
        max_output_tokens=row["max_output_tokens"],
        price=price_from_json(row),
        token_ratio=calibration_ratio_effective(
            ratio=row.get("token_ratio"), samples=row.get("token_samples") or 0
        ),
        deployments=tuple(
            PricedDeployment(
                name=d["name"],
                provider_model=d["provider_model"] or row["provider_model"],
                price=price_from_json(d["price"]),
                base_url=d["base_url"],
                api_key_env=d["api_key_env"],
                position=d["position"],
                weight=d["weight"],
            )
            for d in row.get("deployments") or ()
        ),
    )


def deployments_list() -> QuerySet[LlmDeployment]:
    """Every deployment of an active catalog model, by alias and order (health, metrics, llm_check)."""
    return (
        LlmDeployment.objects.filter(model__is_active=True)
        .select_related("model")
        .order_by("model__alias", "position", "name")
    )


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


def user_login_name(*, username: str) -> str | None:
    """The stored username a login name stands for: the account whose name compares equal to it
    (``usage.usernames``: ``ΣΟΦΟΣ``, ``σοφος`` and ``Σοφοσ`` are one), else one equal regardless of
    case (an account whose name collided when compared names were introduced); None when none is."""
    users = get_user_model()._default_manager
    by_name = AccountName.objects.filter(normalized=username_normalize(username)).values("user_id")
    stored = users.filter(pk__in=by_name).values_list("username", flat=True).first()
    return stored or users.filter(username__iexact=username).values_list("username", flat=True).first()


# The short names of a price's rates, as a price list's diff shows them.
PRICE_RATE_LABELS = {
    "input_usd_per_million": "input",
    "output_usd_per_million": "output",
    "cached_input_usd_per_million": "cache read",
    "cache_write_usd_per_million": "cache write",
    "reasoning_usd_per_million": "reasoning",
}


@dataclass(frozen=True)
class RateChange:
    rate: str  # a label of PRICE_RATE_LABELS
    old: Decimal | None  # None: no such price (or the rate is left to its default)
    new: Decimal | None

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class PriceChange:
    """One model's prices in the active list and in the list about to replace it."""

    alias: str
    rates: tuple[RateChange, ...]
    state: str  # "changed", "unchanged", "added" (priced only in the new list), "removed"

    @property
    def changed(self) -> bool:
        return self.state != "unchanged"


def pricing_version_diff(*, version: PricingVersion) -> list[PriceChange]:
    """Every model priced in the active list or in ``version``, rate by rate, old → new; the
    changed ones first, then by alias (two queries)."""

    def rates_of(version_id) -> dict[str, dict[str, Decimal | None]]:
        return {
            row.pop("model__alias"): row
            for row in ModelPrice.objects.filter(version_id=version_id).values(
                "model__alias", *PRICE_RATE_LABELS
            )
        }

    active_id = PricingVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()
    old = rates_of(active_id) if active_id is not None else {}
    new = rates_of(version.pk)
    changes = []
    for alias in old.keys() | new.keys():
        before, after = old.get(alias, {}), new.get(alias, {})
        rates = tuple(
            RateChange(label, before.get(rate), after.get(rate)) for rate, label in PRICE_RATE_LABELS.items()
        )
        state = (
            "added"
            if alias not in old
            else "removed"
            if alias not in new
            else "changed"
            if any(r.changed for r in rates)
            else "unchanged"
        )
        changes.append(PriceChange(alias, rates, state))
    return sorted(changes, key=lambda c: (not c.changed, c.alias))
