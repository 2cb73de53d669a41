import csv
import itertools
from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, DecimalField, F, Max, Value, When
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from pantheon.admin import ReadOnlyAdmin
from pantheon.errors import ApplicationError
from usage.admin_credits import credit_adjust_action
from usage.admin_review import (
    DateRangeFilter,
    review_budget_bars,
    review_daily_series,
    review_link,
    review_names,
    review_spend_groups,
)
from usage.calibration import calibration_ratio_effective
from usage.cooldown import DeploymentHealth, deployments_health_of
from usage.formatting import credits_display, usd_display
from usage.models import (
    MONEY,
    USAGE_EVENT_FIELDS,
    Budget,
    CreditAccount,
    CreditLedgerEntry,
    LlmCallEvent,
    LlmDeployment,
    LlmModel,
    ModelPrice,
    PricingVersion,
    TokenCalibration,
    UsageDailyRollup,
)
from usage.selectors import PRICE_RATE_LABELS, pricing_version_diff, usage_totals
from usage.services.accounts import credit_account_open
from usage.services.budgets import budget_statuses
from usage.services.pricing import pricing_version_activate, pricing_version_copy
from usage.services.reconciliation import ROLLUP_FIGURES


class LlmDeploymentInline(admin.TabularInline):
    """Where the alias is served, in order; a call falls over to the next (docs/runbook.md)."""

    model = LlmDeployment
    fk_name = "model"
    extra = 0
    fields = [
        "position",
        "name",
        "weight",
        "base_url",
        "api_key_env",
        "provider_model",
        "price_model",
        "is_active",
        "state",
    ]
    readonly_fields = ["state"]
    autocomplete_fields = ["price_model"]

    @admin.display(description="state")
    def state(self, deployment: LlmDeployment) -> str:
        if deployment.pk is None:
            return "—"
        if not deployment.is_active:
            return "inactive"
        return _deployment_state(deployments_health_of([(deployment.model.alias, deployment.name, 0)])[0])


def _deployment_state(health: DeploymentHealth) -> str:
    """``ok``, or ``cooling 42 s``; with the failures of the current window when there are any."""
    shown = "ok" if health.cooling_seconds is None else f"cooling {health.cooling_seconds:g} s"
    failures = health.recent_failures
    return shown + (f", {failures} recent failure{'s' if failures != 1 else ''}" if failures else "")


@admin.register(LlmModel)
class LlmModelAdmin(admin.ModelAdmin):
    list_display = [
        "alias",
        "provider_model",
        "display_name",
        "context_window",
        "max_output_tokens",
        "is_active",
        "token_ratio",
        "deployments_state",
    ]
    readonly_fields = ["token_calibration_display"]
    inlines = [LlmDeploymentInline]
    list_filter = ["is_active"]
    list_editable = ["is_active"]
    search_fields = ["alias", "provider_model", "display_name"]

    def get_queryset(self, request):
        # The list shows each model's deployments and calibration: read with the page, not per row.
        return (
            super().get_queryset(request).select_related("token_calibration").prefetch_related("deployments")
        )

    @admin.display(description="deployments (state)")
    def deployments_state(self, model: LlmModel) -> str:
        rows = [(model.alias, d.name, d.position) for d in model.deployments.all() if d.is_active]
        if not rows:
            return "—"
        return ", ".join(f"{h.name} ({_deployment_state(h)})" for h in deployments_health_of(rows))

    @admin.display(description="token ratio")
    def token_ratio(self, model: LlmModel) -> str:
        """The calibration holds and budgets use (×1 until learned), as in docs/metering.md."""
        calibration = _calibration(model)
        if calibration is None:
            return "×1 (not learned)"
        effective = calibration_ratio_effective(ratio=calibration.ratio, samples=calibration.samples)
        if calibration.samples < settings.TOKEN_CALIBRATION_MIN_SAMPLES:
            return f"×1 ({calibration.samples} of {settings.TOKEN_CALIBRATION_MIN_SAMPLES} calls)"
        return f"×{effective:.3f}"

    @admin.display(description="token calibration")
    def token_calibration_display(self, model: LlmModel) -> str:
        """What holds and budgets use and what it was learned from (raw counts beside the ratio)."""
        calibration = _calibration(model)
        if calibration is None:
            return "Not learned yet: holds and budgets take local token counts as they are (×1)."
        effective = calibration_ratio_effective(ratio=calibration.ratio, samples=calibration.samples)
        latest = f"×{calibration.last_ratio:.4f}" if calibration.last_ratio is not None else "—"
        overall = (
            f"×{calibration.provider_input_tokens / calibration.local_input_tokens:.4f}"
            if calibration.local_input_tokens
            else "—"
        )
        return (
            f"In effect: ×{effective:.3f} (learned ×{calibration.ratio:.4f}; used from "
            f"{settings.TOKEN_CALIBRATION_MIN_SAMPLES} calls on, within "
            f"{settings.TOKEN_CALIBRATION_MIN}–{settings.TOKEN_CALIBRATION_MAX}). "
            f"Learned from {calibration.samples:,} calls: {calibration.provider_input_tokens:,} input "
            f"tokens counted by the provider, {calibration.local_input_tokens:,} counted here ({overall}); "
            f"latest call {latest}, {timezone.localtime(calibration.updated_at):%Y-%m-%d %H:%M}."
        )


def _calibration(model: LlmModel) -> TokenCalibration | None:
    try:
        return model.token_calibration
    except TokenCalibration.DoesNotExist:
        return None


# --- price lists --------------------------------------------------------------------------------
def _editable(version: PricingVersion | None) -> bool:
    """Only drafts change: a list that has been active priced events and stays as it was."""
    return version is None or version.is_draft


class ModelPriceInline(admin.TabularInline):
    model = ModelPrice
    extra = 0
    autocomplete_fields = ["model"]

    def has_add_permission(self, request, obj=None):
        return _editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return _editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _editable(obj) and super().has_delete_permission(request, obj)


@admin.register(PricingVersion)
class PricingVersionAdmin(admin.ModelAdmin):
    """Price lists: the active one (and every one that has been active) is read-only; "Publish as
    new version" copies it into a draft to edit, "Activate" switches to a draft atomically."""

    list_display = ["name", "state", "activated_at", "created_at", "notes"]
    list_filter = ["is_active"]
    fields = ["name", "notes", "is_active", "activated_at", "created_at"]
    readonly_fields = ["is_active", "activated_at", "created_at"]
    inlines = [ModelPriceInline]
    actions = ["publish_new_version", "activate"]

    @admin.display(description="state")
    def state(self, version: PricingVersion) -> str:
        return "active" if version.is_active else "draft" if version.is_draft else "retired (read-only)"

    def has_change_permission(self, request, obj=None):
        return _editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return obj is not None and obj.is_draft and super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a bulk delete could take frozen lists with it
        return actions

    def _one(self, request, queryset) -> PricingVersion | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one price list.", messages.WARNING)
            return None
        return queryset.get()

    @admin.action(description="Publish as new version (copy into a draft to edit)")
    def publish_new_version(self, request, queryset):
        version = self._one(request, queryset)
        if version is None:
            return None
        draft = pricing_version_copy(version=version)
        self.message_user(
            request,
            f"Draft “{draft.name}” copied from “{version.name}”: edit its prices, then activate it.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:usage_pricingversion_change", args=[draft.pk]))

    @admin.action(description="Activate… (shows the changes, then asks to confirm)")
    def activate(self, request, queryset):
        version = self._one(request, queryset)
        if version is None:
            return None
        return HttpResponseRedirect(reverse("admin:usage_pricingversion_activate", args=[version.pk]))

    def get_urls(self):
        activate = path(
            "<path:object_id>/activate/",
            self.admin_site.admin_view(self.activate_view),
            name="usage_pricingversion_activate",
        )
        return [activate, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "can_activate": version is not None and version.is_draft}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def activate_view(self, request, object_id):
        """Activation in two steps, as a deletion: the changes against the active list, model by
        model and rate by rate (old → new), then the confirmation (POST) that switches."""
        version = self.get_object(request, object_id)
        if version is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, version) or not super().has_change_permission(request):
            raise PermissionDenied
        if version.is_active:
            self.message_user(request, f"“{version.name}” is already the active price list.", messages.INFO)
            return HttpResponseRedirect(reverse("admin:usage_pricingversion_change", args=[version.pk]))
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                pricing_version_activate(version=version)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"“{version.name}” is now the active price list.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:usage_pricingversion_changelist"))
        changes = pricing_version_diff(version=version)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Activate “{version.name}”?",
            "opts": self.opts,
            "version": version,
            "active": PricingVersion.objects.filter(is_active=True).first(),
            "changes": changes,
            "changed_count": sum(c.changed for c in changes),
            "rate_labels": list(PRICE_RATE_LABELS.values()),
        }
        return TemplateResponse(request, "admin/usage/pricingversion/activate_confirmation.html", context)


# --- credits ------------------------------------------------------------------------------------
@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    """Balances are changed by ledger entries only: the "Adjust credit balance" action writes one."""

    list_display = ["user", "balance_display", "held_display", "available_display", "last_entry"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "balance_display", "held_display", "available_display", "last_entry", "ledger"]
    readonly_fields = fields
    list_select_related = ["user"]
    actions = ["adjust_balance"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(last_entry_at=Max("user__credit_entries__created_at"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        """The list (and its adjust action) needs it; an account's page is read-only: no Save."""
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, account: CreditAccount) -> str:
        return credits_display(account.balance)

    @admin.display(description="held", ordering="held")
    def held_display(self, account: CreditAccount) -> str:
        return credits_display(account.held)

    @admin.display(description="available")
    def available_display(self, account: CreditAccount) -> str:
        return credits_display(account.available)

    @admin.display(description="last ledger entry", ordering="last_entry_at")
    def last_entry(self, account: CreditAccount):
        return account.last_entry_at

    @admin.display(description="ledger")
    def ledger(self, account: CreditAccount) -> str:
        url = reverse("admin:usage_creditledgerentry_changelist") + f"?user__id__exact={account.user_id}"
        return format_html('<a href="{}">Ledger entries of {}</a>', url, account.user)

    @admin.action(description="Adjust credit balance…")
    def adjust_balance(self, request, queryset):
        return credit_adjust_action(self, request, [a.user for a in queryset.select_related("user")])


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "user",
        "kind",
        "amount_display",
        "balance_display",
        "turn_display",
        "note",
        "created_by",
    ]
    fields = list_display
    readonly_fields = fields
    list_filter = ["kind", "created_at", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "=turn_id", "note"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "created_by"]

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, entry: CreditLedgerEntry) -> str:
        return credits_display(entry.amount, signed=True)

    @admin.display(description="balance after", ordering="balance_after")
    def balance_display(self, entry: CreditLedgerEntry) -> str:
        return credits_display(entry.balance_after)

    @admin.display(description="turn")
    def turn_display(self, entry: CreditLedgerEntry):
        """The turn the entry paid for (``Session title #3``), linked to its admin page."""
        return _linked(*_ref(entry, "turn"))

    def get_changelist(self, request, **kwargs):
        return LedgerChangeList


# --- usage and cost review ----------------------------------------------------------------------
class ValueFilter(admin.SimpleListFilter):
    """Filter on an id the events carry (``?room=<uuid>``), offering the ids present in the list by
    name (see ``usage.admin_review.review_names``)."""

    kind: str = ""
    field: str = ""

    def lookups(self, request, model_admin):
        values = (
            model_admin.get_queryset(request)
            .exclude(**{f"{self.field}__isnull": True})
            .order_by(self.field)  # the model's default ordering would defeat DISTINCT
            .values_list(self.field, flat=True)
            .distinct()[:15]
        )
        labels = review_names(self.kind, values)
        return sorted(((str(v), labels[v]) for v in values), key=lambda choice: choice[1].lower())

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(**{self.field: value})
        except (ValueError, ValidationError):
            return queryset.none()


class RoomFilter(ValueFilter):
    title = "room"
    parameter_name = "room"
    kind = "room"
    field = "room_id"


class SessionFilter(ValueFilter):
    title = "session"
    parameter_name = "session"
    kind = "session"
    field = "session_id"


class ReviewChangeList(ChangeList):
    """The event list, with the names of each page's rooms, sessions and turns looked up at once
    (one query per kind, not one per row)."""

    kinds = ("room", "session", "turn")

    def get_results(self, request):
        super().get_results(request)
        self.result_list = events = list(self.result_list)
        for kind in self.kinds:
            labels = review_names(kind, (getattr(e, f"{kind}_id") for e in events))
            for event in events:
                setattr(event, f"{kind}_ref", review_link(kind, getattr(event, f"{kind}_id"), labels))


class LedgerChangeList(ReviewChangeList):
    kinds = ("turn",)


def _ref(event: LlmCallEvent | CreditLedgerEntry, kind: str) -> tuple[str, str]:
    """The (label, URL) of the event's room, session or turn; looked up here on a detail page."""
    ref = getattr(event, f"{kind}_ref", None)
    if ref is None:
        object_id = getattr(event, f"{kind}_id")
        ref = review_link(kind, object_id, review_names(kind, [object_id]))
    return ref


def _linked(label: str, url: str):
    return format_html('<a href="{}">{}</a>', url, label) if url else label or "—"


# A call's cost as billed to its user: its cost when billable, else 0 (the page's "billed USD").
BILLED_COST = Case(
    When(billable=True, then=F("cost_usd")), default=Value(Decimal(0)), output_field=DecimalField(**MONEY)
)

CSV_FIELDS = [
    "id",
    "created_at",
    "user_id",
    "username",
    "room_id",
    "room_name",
    "session_id",
    *USAGE_EVENT_FIELDS,
    "billed_cost_usd",  # the cost of the billable calls: what the review's totals show as billed
    "pricing_version_id",
    "provider_cost_usd",
    "provider_final_cost_usd",
    "reconciliation",
    "reconciliation_detail",
]


@admin.register(LlmCallEvent)
class LlmCallEventAdmin(ReadOnlyAdmin):
    """Usage and cost review: filter (dates from/to, user, room, model …), read the totals, the
    spend per user, room and model and the daily chart, export exactly what is listed."""

    # Money first: with the admin's side bars open at 1,280 px, cost and credits are in view without
    # scrolling the table sideways.
    list_display = [
        "when",
        "user",
        "cost",
        "credits",
        "call",
        "room_display",
        "turn_display",
        "tokens",
        "outcome",
    ]
    list_display_links = ["when"]
    list_filter = [
        DateRangeFilter,
        ("user", admin.RelatedOnlyFieldListFilter),
        RoomFilter,
        SessionFilter,
        "model_alias",
        "deployment",
        "purpose",
        "billable",
        "status",
        "reconciliation",
        "orphaned",
        "tokens_estimated",
    ]
    search_fields = ["user__username", "provider_generation_id", "=turn_id", "=session_id", "=room_id"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    actions = ["export_selected_csv"]
    readonly_fields = ["room_display", "session_display", "turn_display"]
    fieldsets = [
        (None, {"fields": ["id", "created_at", "user", "room_display", "session_display", "turn_display"]}),
        (
            "Call",
            {
                "fields": [
                    "agent_key",
                    "purpose",
                    "model_alias",
                    "deployment",
                    "provider_model",
                    "provider_generation_id",
                    "status",
                    "error_code",
                    "latency_ms",
                ]
            },
        ),
        (
            "Tokens and cost",
            {
                "fields": [
                    "input_tokens",
                    "output_tokens",
                    "cached_input_tokens",
                    "cache_write_tokens",
                    "reasoning_tokens",
                    "tokens_estimated",
                    "provider_input_tokens",
                    "provider_output_tokens",
                    "oe_tokens",
                    "cost_usd",
                    "credits_burned",
                    "credits_unbilled",
                    "pricing_version",
                    "billable",
                ]
            },
        ),
        (
            "Reconciliation and flags",
            {
                "fields": [
                    "reconciliation",
                    "provider_cost_usd",
                    "provider_final_cost_usd",
                    "reconciliation_detail",
                    "reconciled_at",
                    "orphaned",
                    "abandoned",
                    "figures_clamped",
                ]
            },
        ),
    ]

    def get_changelist(self, request, **kwargs):
        return ReviewChangeList

    @admin.display(description="room")
    def room_display(self, event: LlmCallEvent):
        return _linked(*_ref(event, "room"))

    @admin.display(description="session")
    def session_display(self, event: LlmCallEvent):
        return _linked(*_ref(event, "session"))

    @admin.display(description="turn")
    def turn_display(self, event: LlmCallEvent):
        """The turn (``Session title #3``) or, for calls of no turn (summaries, orphans), the session."""
        turn_label, turn_url = _ref(event, "turn")
        if turn_url:
            return _linked(turn_label, turn_url)
        return _linked(*_ref(event, "session"))

    @admin.display(description="when", ordering="created_at")
    def when(self, event: LlmCallEvent) -> str:
        return f"{timezone.localtime(event.created_at):%Y-%m-%d %H:%M}"

    @admin.display(description="call", ordering="model_alias")
    def call(self, event: LlmCallEvent) -> str:
        """``deepseek@fake-east · agent reply``: the alias, the deployment that served it (if any)."""
        served = f"{event.model_alias}@{event.deployment}" if event.deployment else event.model_alias
        return f"{served} · {event.purpose.replace('_', ' ')}"

    @admin.display(description="tokens in → out")
    def tokens(self, event: LlmCallEvent) -> str:
        """``1,200 (cached 800, written 100) → 300 (reasoning 120)``: the parts priced apart."""
        inside = [
            f"{label} {count:,}"
            for label, count in (("cached", event.cached_input_tokens), ("written", event.cache_write_tokens))
            if count
        ]
        shown = f"{event.input_tokens:,}" + (f" ({', '.join(inside)})" if inside else "")
        shown += f" → {event.output_tokens:,}"
        if event.reasoning_tokens:
            shown += f" (reasoning {event.reasoning_tokens:,})"
        return shown + (" ≈" if event.tokens_estimated else "")

    @admin.display(description="cost USD", ordering="cost_usd")
    def cost(self, event: LlmCallEvent) -> str:
        return usd_display(event.cost_usd)

    @admin.display(description="credits", ordering="credits_burned")
    def credits(self, event: LlmCallEvent) -> str:
        return credits_display(event.credits_burned)

    @admin.display(description="outcome")
    def outcome(self, event: LlmCallEvent) -> str:
        parts = ["ok" if event.status == LlmCallEvent.Status.SUCCEEDED else f"failed: {event.error_code}"]
        if not event.billable:
            parts.append("not billed")
        if event.orphaned:
            parts.append("orphaned")
        if event.reconciliation in (LlmCallEvent.Reconciliation.DRIFT, LlmCallEvent.Reconciliation.MISSING):
            parts.append(event.get_reconciliation_display())
        if event.reconciliation_detail:
            differing = ", ".join(
                f"{part} {ours:,} vs {theirs:,}"
                for part, (ours, theirs) in event.reconciliation_detail.items()
            )
            parts.append(f"provider counts differ: {differing}")
        return ", ".join(parts)

    def get_urls(self):
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_filtered_csv),
            name="usage_llmcallevent_export",
        )
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if ERROR_FLAG in request.GET:  # where Django's admin sends a filter it could not apply
            self.message_user(
                request,
                "A filter in the address was not understood: the list is not filtered by it.",
                messages.WARNING,
            )
        response = super().changelist_view(request, extra_context=extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            filtered = changelist.queryset.order_by()
            dates = next((f for f in changelist.filter_specs if isinstance(f, DateRangeFilter)), None)
            totals = usage_totals(events=filtered)
            response.context_data.update(
                usage_totals=totals,
                usage_totals_display={
                    "cost_usd": usd_display(totals["cost_usd"]),
                    "billed_cost_usd": usd_display(totals["billed_cost_usd"]),
                    "provider_cost_usd": usd_display(totals["provider_cost_usd"]),
                    "credits_burned": credits_display(totals["credits_burned"]),
                    "unbilled_cost_usd": (
                        usd_display(totals["cost_usd"] - totals["billed_cost_usd"])
                        if totals["cost_usd"] != totals["billed_cost_usd"]
                        else ""
                    ),
                },
                usage_groups=review_spend_groups(filtered, changelist=changelist, total=totals["cost_usd"]),
                usage_chart=review_daily_series(filtered, start=dates.start, end=dates.end),
                usage_budgets=review_budget_bars(),
            )
        return response

    def export_filtered_csv(self, request):
        queryset = self.get_changelist_instance(request).get_queryset(request)
        return self._csv(queryset, "llm-usage.csv")

    @admin.action(description="Export selected events as CSV")
    def export_selected_csv(self, request, queryset):
        return self._csv(queryset, "llm-usage-selected.csv")

    def _csv(self, queryset, filename: str) -> StreamingHttpResponse:
        """Every listed event, oldest first, with its user's name and its room's (one lookup for all
        the rooms, then the rows stream)."""
        queryset = queryset.order_by("created_at", "id")
        room_names = review_names("room", queryset.order_by().values_list("room_id", flat=True).distinct())
        queryset = queryset.annotate(billed_cost_usd=BILLED_COST)
        columns = [f for f in CSV_FIELDS if f != "room_name"]
        columns[columns.index("username")] = "user__username"

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def row(values: dict) -> str:
            values["username"] = values.pop("user__username")
            values["room_name"] = room_names.get(values["room_id"], "")
            return writer.writerow([values[f] for f in CSV_FIELDS])

        rows = (row(values) for values in queryset.values(*columns).iterator())
        response = StreamingHttpResponse(
            itertools.chain([writer.writerow(CSV_FIELDS)], rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Spend limits per period (docs/budgets.md); the list shows each one's current period."""

    list_display = [
        "id",
        "user",
        "scope_display",
        "period",
        "limit_display",
        "spent_display",
        "remaining_display",
        "set_by",
    ]
    list_filter = ["period", "set_by"]
    search_fields = ["user__username", "model_alias"]
    raw_id_fields = ["user"]
    fields = ["user", "room_id", "api_key_id", "model_alias", "period", "limit_credits", "set_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def _status(self, obj: Budget):
        """The current period's figures, read once per listed budget."""
        if not hasattr(obj, "_period_status"):
            obj._period_status = budget_statuses([obj])[0]
        return obj._period_status

    @admin.display(description="applies to")
    def scope_display(self, obj: Budget) -> str:
        if obj.room_id:
            target = review_names("room", [obj.room_id])[obj.room_id]
        else:
            target = f"API key {obj.api_key_id}" if obj.api_key_id else "all turns"
        return f"{target} ({obj.model_alias})" if obj.model_alias else target

    @admin.display(description="limit")
    def limit_display(self, obj: Budget) -> str:
        return credits_display(obj.limit_credits)

    @admin.display(description="spent + held")
    def spent_display(self, obj: Budget) -> str:
        status = self._status(obj)
        return f"{credits_display(status.spent)} + {credits_display(status.held)}"

    @admin.display(description="remaining this period")
    def remaining_display(self, obj: Budget) -> str:
        status = self._status(obj)
        return f"{credits_display(status.remaining)} (resets {status.resets_at:%Y-%m-%d %H:%M %Z})"


@admin.register(UsageDailyRollup)
class UsageDailyRollupAdmin(ReadOnlyAdmin):
    list_display = ["day", "user", "model_alias", *ROLLUP_FIGURES]
    list_filter = ["day", "model_alias", ("user", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "day"
    list_select_related = ["user"]


# --- users, with their credits ------------------------------------------------------------------
class CreditAccountInline(admin.StackedInline):
    model = CreditAccount
    can_delete = False
    fields = ["balance", "held", "available"]
    readonly_fields = fields

    @admin.display(description="available")
    def available(self, account: CreditAccount) -> str:
        return credits_display(account.available)


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [*BaseUserAdmin.inlines, CreditAccountInline]
    list_display = [*BaseUserAdmin.list_display, "credit_balance", "credits_held", "credits_available"]
    list_select_related = ["credit_account"]
    actions = ["adjust_balance"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # every user gets a credit account with the opening grant
            credit_account_open(user=obj)

    @staticmethod
    def _account(user) -> CreditAccount | None:
        return getattr(user, "credit_account", None)

    @admin.display(description="balance", ordering="credit_account__balance")
    def credit_balance(self, user) -> str:
        account = self._account(user)
        return credits_display(account.balance) if account else "—"

    @admin.display(description="held", ordering="credit_account__held")
    def credits_held(self, user) -> str:
        account = self._account(user)
        return credits_display(account.held) if account else "—"

    @admin.display(description="available")
    def credits_available(self, user) -> str:
        account = self._account(user)
        return credits_display(account.available) if account else "—"

    @admin.action(description="Adjust credit balance…")
    def adjust_balance(self, request, queryset):
        return credit_adjust_action(self, request, list(queryset))
