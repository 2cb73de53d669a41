"""Model catalog, pricing, credits and the per-call usage ledger.

This app knows no other app of Pantheon's but the user model: rooms, sessions, turns and agents are
referenced by id (and agents by key), so a usage event outlives anything it describes.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from knox.models import AbstractAuthToken

from usage.formatting import usd_display

MONEY = {"max_digits": 24, "decimal_places": 12}
CREDITS = {"max_digits": 18, "decimal_places": 4}


class LlmModel(models.Model):
    """An entry of the model catalog: a Pantheon alias for a provider model."""

    alias = models.SlugField(max_length=64, unique=True)
    provider_model = models.CharField(max_length=200)
    display_name = models.CharField(max_length=200, blank=True)
    context_window = models.PositiveIntegerField(default=8192)
    max_output_tokens = models.PositiveIntegerField(default=2048)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["alias"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return f"{self.alias} ({self.provider_model})"


class LlmDeployment(models.Model):
    """One place an alias is served: a provider endpoint, the environment variable holding its key,
    the model id there and the price entry it is billed at. A call tries an alias's active
    deployments in ``position`` order (a random pick weighted by ``weight`` among equal positions)
    and falls over to the next on a connection error, a timeout, a 429 or a 5xx."""

    model = models.ForeignKey(LlmModel, on_delete=models.CASCADE, related_name="deployments")
    name = models.SlugField(max_length=64, unique=True, help_text="Shown on usage events and in /health.")
    position = models.PositiveSmallIntegerField(default=0)
    weight = models.PositiveSmallIntegerField(
        default=1,
        help_text="Share among deployments of one position; 0: drained (reached only when the others fail).",
    )
    base_url = models.URLField(
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="An http(s) URL, the API's root (…/v1). Empty: LLM_BASE_URL.",
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable's name, e.g. DEEPSEEK_API_KEY.")
        ],
        help_text="The environment variable holding its API key (empty: LLM_API_KEY). Never the key.",
    )
    provider_model = models.CharField(max_length=200, blank=True, help_text="Empty: the alias's model id.")
    price_model = models.ForeignKey(
        LlmModel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Billed at this catalog entry's price in the active list (empty: the alias's own).",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "position", "name"]
        verbose_name = "deployment"

    def __str__(self) -> str:
        return self.name


class TokenCalibration(models.Model):
    """How a catalog model's provider counts input against Pantheon's own count (tiktoken), learned
    by reconciliation from the provider's native counts (``usage.services.calibration``). Holds and
    context budgets multiply local counts by the ratio in effect (``usage.calibration``): this
    smoothed ratio, clamped, once it rests on enough calls. The raw totals are kept beside it."""

    model = models.OneToOneField(
        LlmModel, on_delete=models.CASCADE, primary_key=True, related_name="token_calibration"
    )
    ratio = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        default=Decimal(1),
        help_text="Provider input tokens ÷ local count, smoothed over the calls learned from (not clamped).",
    )
    samples = models.PositiveIntegerField(default=0, help_text="Reconciled calls learned from.")
    provider_input_tokens = models.PositiveBigIntegerField(
        default=0, help_text="Their input as the provider counted it (native), summed."
    )
    local_input_tokens = models.PositiveBigIntegerField(
        default=0, help_text="Their input as counted locally before each call, summed."
    )
    last_ratio = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="The latest call's own ratio."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "token calibration"

    def __str__(self) -> str:
        return f"{self.model_id}: ×{self.ratio} over {self.samples} calls"


class PricingVersion(models.Model):
    """A versioned price list. Exactly one version is active at a time.

    A list that has never been active is a draft and may be edited; once activated it is frozen for
    good (usage events keep the version they were priced with), and a change is a new version
    (``usage.services.pricing``).
    """

    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=False)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When it was first made active; empty for a draft, which has never been active.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_pricing_version"
            )
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else " (draft)" if self.is_draft else "")

    @property
    def is_draft(self) -> bool:
        return not self.is_active and self.activated_at is None


RATE = {"max_digits": 12, "decimal_places": 6}


class ModelPrice(models.Model):
    """USD per million tokens of one model in one price list. A cache or reasoning rate left empty
    is the input rate (cache reads and writes) or the output rate (reasoning): see usage.metering."""

    version = models.ForeignKey(PricingVersion, on_delete=models.CASCADE, related_name="prices")
    model = models.ForeignKey(LlmModel, on_delete=models.PROTECT, related_name="prices")
    input_usd_per_million = models.DecimalField(**RATE, verbose_name="input (USD per million tokens)")
    output_usd_per_million = models.DecimalField(**RATE, verbose_name="output (USD per million tokens)")
    cached_input_usd_per_million = models.DecimalField(
        **RATE,
        verbose_name="cached input (USD per million tokens)",
        null=True,
        blank=True,
        help_text="Input read from the provider's prompt cache (empty: input).",
    )
    cache_write_usd_per_million = models.DecimalField(
        **RATE,
        verbose_name="cache write (USD per million tokens)",
        null=True,
        blank=True,
        help_text="Input written to the prompt cache (empty: input).",
    )
    reasoning_usd_per_million = models.DecimalField(
        **RATE,
        verbose_name="reasoning (USD per million tokens)",
        null=True,
        blank=True,
        help_text="Reasoning tokens, part of the output (empty: output).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "model"], name="one_price_per_model_version")
        ]

    def __str__(self) -> str:
        return f"{self.model.alias}@{self.version.name}"


# Every rate of a price, in the order of ``usage.metering.Price``'s fields.
PRICE_RATES = (
    "input_usd_per_million",
    "output_usd_per_million",
    "cached_input_usd_per_million",
    "cache_write_usd_per_million",
    "reasoning_usd_per_million",
)


class CreditAccount(models.Model):
    """A user's credits. ``balance`` always equals the sum of the user's ledger entries and never goes
    below zero; ``held`` is what turns and summaries in flight have reserved (the sum of the user's
    ``CreditHold`` rows), so ``balance − held`` is what a new turn may still reserve."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_account"
    )
    balance = models.DecimalField(**CREDITS, default=Decimal("0"))
    held = models.DecimalField(**CREDITS, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="credit_balance_not_negative"),
            models.CheckConstraint(condition=Q(held__gte=0), name="credits_held_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.balance} credits"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class CreditHold(models.Model):
    """Credits reserved for work in flight: a turn's worst case from before its first LLM call to its
    commit, or a summary's worst case from the commit of the turn that asked for it to the summary.

    A hold that outlives ``expires_at`` belongs to work that died (a killed worker, a lost task):
    the periodic sweep frees it.
    """

    class Kind(models.TextChoices):
        TURN = "turn"
        SUMMARY = "summary"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_holds")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(**CREDITS)
    # The worst case in USD and the model it was mostly for, so an abandoned hold can be reported.
    cost_usd = models.DecimalField(**MONEY, verbose_name="cost (USD)", default=Decimal("0"))
    model_alias = models.CharField(max_length=64, blank=True)
    room_id = models.UUIDField(null=True, blank=True)
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    turn_id = models.UUIDField(null=True, blank=True)
    covers_through_turn_index = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A summary hold: when its calls began (a dead worker's hold then stands for calls that were made).
    calls_started_at = models.DateTimeField(null=True, blank=True)
    # What this hold reserved of each budget's period (``BudgetUsage``): ``[{"u": usage id, "a": amount,
    # "s": the summary's part of it, "m": the budget's model alias}]``, given back or settled with it.
    budget_shares = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="credit_hold_not_negative"),
            models.UniqueConstraint(
                fields=["session_id", "covers_through_turn_index"],
                condition=Q(kind="summary"),
                name="one_summary_hold_per_covered_index",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} hold {self.amount} for {self.user_id}"


class Budget(models.Model):
    """A spend limit in credits per calendar period (``BUDGET_TIME_ZONE``) on a user's turns: all of
    them, one room's, or those made through one API key — optionally only a model alias's calls.

    Every budget that applies to a turn is checked in the statement that places its hold
    (``usage.services.budgets``). Operators set budgets on anything; a user may add tighter ones on
    their own rooms and keys (``set_by = user``), which apply beside the operator's, never instead.
    Rooms and keys are referenced by id: this app knows no other app of Pantheon's.
    """

    class Period(models.TextChoices):
        DAY = "day"
        WEEK = "week"
        MONTH = "month"

    class SetBy(models.TextChoices):
        OPERATOR = "operator"
        USER = "user"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budgets")
    room_id = models.UUIDField(null=True, blank=True, db_index=True, help_text="Empty: not one room.")
    api_key_id = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="Empty: not one key.")
    model_alias = models.CharField(max_length=64, blank=True, help_text="Empty: every model.")
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.MONTH)
    limit_credits = models.DecimalField(**CREDITS)
    set_by = models.CharField(max_length=10, choices=SetBy.choices, default=SetBy.OPERATOR)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(limit_credits__gte=0), name="budget_limit_not_negative"),
            models.CheckConstraint(
                condition=Q(room_id__isnull=True) | Q(api_key_id__isnull=True),
                name="budget_on_one_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope_label} {self.period} {self.limit_credits}"

    @property
    def scope(self) -> str:
        return "room" if self.room_id else "api_key" if self.api_key_id else "user"

    @property
    def scope_label(self) -> str:
        target = {"room": f"room {self.room_id}", "api_key": f"key {self.api_key_id}"}.get(self.scope, "user")
        model = f" ({self.model_alias})" if self.model_alias else ""
        return f"{target}{model}"


class BudgetUsage(models.Model):
    """One budget's period: what its settled turns and summaries spent and what holds in flight have
    reserved of it. A new period is a new row (made by the first hold in it), so nothing resets."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="usage")
    period_start = models.DateTimeField()
    spent = models.DecimalField(**CREDITS, default=Decimal("0"))
    held = models.DecimalField(**CREDITS, default=Decimal("0"))
    warned_at = models.DateTimeField(null=True, blank=True, help_text="When the soft limit was reached.")

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start"], name="one_usage_per_budget_period"),
            models.CheckConstraint(condition=Q(held__gte=0), name="budget_held_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.budget} from {self.period_start:%Y-%m-%d}: {self.spent} + {self.held}"


class CreditLedgerEntry(models.Model):
    """Every change of a balance: grants and adjustments (either sign), turn and summary debits
    (negative). The balance is always the sum of the user's entries."""

    class Kind(models.TextChoices):
        GRANT = "grant"
        TURN_DEBIT = "turn_debit"
        SUMMARY_DEBIT = "summary_debit"
        ADJUSTMENT = "adjustment"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_entries"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = models.DecimalField(**CREDITS)
    balance_after = models.DecimalField(**CREDITS)
    turn_id = models.UUIDField(null=True, blank=True, db_index=True)
    note = models.CharField(max_length=200, blank=True)
    # The operator who made an adjustment (None: written by the application, or from a shell).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "credit ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} for {self.user_id}"


# What a person reads of a call, in this order, wherever events are listed: the API's usage
# (sessions_app.api.serializers.UsageEventSerializer) and the admin's CSV export (usage.admin), which
# adds who and where before and the operator's reconciliation figures after.
USAGE_EVENT_FIELDS = [
    "turn_id",
    "agent_key",
    "purpose",
    "model_alias",
    "provider_model",
    "provider_generation_id",
    "deployment",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tokens_estimated",
    "oe_tokens",
    "cost_usd",
    "credits_burned",
    "credits_unbilled",
    "provider_overshoot",
    "billable",
    "status",
    "error_code",
    "latency_ms",
    "orphaned",
    "abandoned",
    "figures_clamped",
]


class LlmCallEvent(models.Model):
    """One LLM call, metered. Written in the same transaction as its turn (or alone, orphaned)."""

    class Purpose(models.TextChoices):
        AGENT_REPLY = "agent_reply"
        ROUTING = "routing"
        SUMMARY = "summary"
        EXTRACTION = "extraction"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Reconciliation(models.TextChoices):
        PENDING = "pending"
        MATCHED = "matched"
        DRIFT = "drift", "drift beyond tolerance"
        MISSING = "missing", "unknown to the provider"
        NOT_APPLICABLE = "not_applicable", "nothing to reconcile"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="llm_call_events"
    )
    room_id = models.UUIDField(null=True, blank=True, db_index=True)
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    turn_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_key = models.CharField(max_length=32, blank=True)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    model_alias = models.CharField(max_length=64, db_index=True)
    provider_model = models.CharField(max_length=200)
    provider_generation_id = models.CharField(max_length=200, blank=True, db_index=True)
    # The catalog deployment the call went to (``LlmDeployment.name``; empty: the configured provider).
    deployment = models.CharField(max_length=64, blank=True, db_index=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    # Parts of the counts above, as the provider reported them, each priced at its own rate.
    cached_input_tokens = models.PositiveIntegerField(
        default=0, help_text="Input read from the prompt cache."
    )
    cache_write_tokens = models.PositiveIntegerField(
        default=0, help_text="Input written to the prompt cache."
    )
    reasoning_tokens = models.PositiveIntegerField(default=0, help_text="Output spent on reasoning.")
    tokens_estimated = models.BooleanField(default=False)
    # The input as Pantheon counted it before the call (tiktoken): what the token calibration compares
    # with the provider's native count (None: not counted, e.g. events written before it was kept).
    local_input_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Input as counted locally (tiktoken) before the call."
    )
    provider_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    provider_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    provider_cost_usd = models.DecimalField(
        **MONEY, verbose_name="provider cost (USD)", null=True, blank=True
    )
    oe_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(**MONEY, verbose_name="cost (USD)", default=Decimal("0"))
    credits_burned = models.DecimalField(**CREDITS, default=Decimal("0"))
    # Credits the call should have cost the user but could not be debited (the provider reported more
    # than the hold and the balance covered): flagged for the operator.
    credits_unbilled = models.DecimalField(**CREDITS, default=Decimal("0"))
    pricing_version = models.ForeignKey(PricingVersion, on_delete=models.PROTECT, null=True, related_name="+")
    billable = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUCCEEDED)
    error_code = models.CharField(max_length=64, blank=True)
    latency_ms = models.PositiveIntegerField("latency (ms)", default=0)
    orphaned = models.BooleanField(
        default=False, help_text="The call was made but its turn could not be written."
    )
    abandoned = models.BooleanField(
        default=False,
        help_text="Written by the sweep for work that died holding credits: calls may have been made "
        "and paid; the figures are the hold's worst-case estimate.",
    )
    figures_clamped = models.BooleanField(
        default=False,
        help_text="The provider reported token counts or an id beyond what a column holds; they were "
        "clamped or cut.",
    )
    provider_overshoot = models.BooleanField(
        default=False,
        help_text="The call cost more than its turn's hold could cover (the provider reported more "
        "tokens than asked for): the rest is in credits unbilled, never taken from the balance.",
    )
    # Reconciliation with the provider's own record of the generation (usage.services.reconciliation).
    reconciliation = models.CharField(
        max_length=20, choices=Reconciliation.choices, default=Reconciliation.PENDING, db_index=True
    )
    provider_final_cost_usd = models.DecimalField(
        **MONEY, verbose_name="provider final cost (USD)", null=True, blank=True
    )
    # The parts whose counts differ from the provider's record: {"input": [ours, theirs], ...}.
    reconciliation_detail = models.JSONField(default=dict, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "LLM call event"
        indexes = [
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["model_alias", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.model_alias} {usd_display(self.cost_usd)} USD"


class UsageDailyRollup(models.Model):
    """Per day, user and model: what was called and what it cost (rebuilt by reconciliation)."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_rollups")
    model_alias = models.CharField(max_length=64)
    events = models.PositiveIntegerField(default=0)
    failed_events = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(**MONEY, verbose_name="cost (USD)", default=Decimal("0"))
    billed_cost_usd = models.DecimalField(**MONEY, verbose_name="billed cost (USD)", default=Decimal("0"))
    credits_burned = models.DecimalField(**CREDITS, default=Decimal("0"))
    provider_cost_usd = models.DecimalField(**MONEY, verbose_name="provider cost (USD)", default=Decimal("0"))
    drift_events = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "model_alias"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user", "model_alias"], name="one_rollup_per_day_user_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.model_alias}: {self.cost_usd} USD"


class ApiToken(AbstractAuthToken):
    """A user's API token for one client or device (django-rest-knox): only the SHA-512 digest of
    the token is stored (``digest``, the key) and the first characters it is found by
    (``token_key``); the token itself is shown once, when issued. It expires ``expiry`` (pushed on
    by use, up to its maximum age: ``usage.services.tokens``) and is revoked by deleting its row."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name or 'token'} of {self.user_id} (created {self.created:%Y-%m-%d})"

    def still_valid(self) -> bool:
        """Whether the token still exists unexpired now (a stream asks between two agents)."""
        live = ApiToken.objects.filter(pk=self.pk)
        return (live.filter(expiry__isnull=True) | live.filter(expiry__gt=timezone.now())).exists()


class AccountName(models.Model):
    """A username as it is compared (``usage.usernames``): normalised (NFKC, case folded) and as it
    looks (its confusable skeleton). Both are unique, so two names that differ only in case, in
    compatibility form or in look-alike letters cannot both exist, even when registered at once.
    Kept for every user whenever the username is saved (``usage.apps``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="account_name"
    )
    # NFKC and case folding can lengthen a name (ß → ss, ﬃ → ffi): room for 150 characters at 4×.
    normalized = models.CharField(max_length=600, unique=True)
    skeleton = models.CharField(max_length=600, unique=True)

    def __str__(self) -> str:
        return self.normalized
