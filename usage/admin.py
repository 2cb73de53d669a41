import csv
import itertools

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.urls import path

from usage.admin_review import review_daily_chart
from usage.models import (
    CreditAccount,
    CreditLedgerEntry,
    LlmCallEvent,
    LlmModel,
    ModelPrice,
    PricingVersion,
    UsageDailyRollup,
)
from usage.selectors import usage_totals
from usage.services.accounts import credit_account_open


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledgers are written by the application only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LlmModel)
class LlmModelAdmin(admin.ModelAdmin):
    list_display = [
        "alias",
        "provider_model",
        "display_name",
        "context_window",
        "max_output_tokens",
        "is_active",
    ]
    list_filter = ["is_active"]
    list_editable = ["is_active"]
    search_fields = ["alias", "provider_model", "display_name"]


class ModelPriceInline(admin.TabularInline):
    model = ModelPrice
    extra = 0
    autocomplete_fields = ["model"]


@admin.register(PricingVersion)
class PricingVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "created_at"]
    list_filter = ["is_active"]
    inlines = [ModelPriceInline]


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ["user", "balance", "updated_at"]
    search_fields = ["user__username", "user__email"]
    readonly_fields = ["user", "balance", "updated_at"]

    def has_add_permission(self, request):
        return False


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "kind", "amount", "balance_after", "turn_id", "note"]
    list_filter = ["kind", "created_at"]
    search_fields = ["user__username", "turn_id"]
    date_hierarchy = "created_at"


class ValueFilter(admin.SimpleListFilter):
    """Filter on an exact value typed into the query string (``?room=<uuid>``), listing the values
    present in the current results so an admin can click one."""

    field: str = ""

    def lookups(self, request, model_admin):
        values = (
            model_admin.get_queryset(request)
            .exclude(**{f"{self.field}__isnull": True})
            .order_by(self.field)  # the model's default ordering would defeat DISTINCT
            .values_list(self.field, flat=True)
            .distinct()[:15]
        )
        return [(str(v), str(v)) for v in values]

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
    field = "room_id"


class SessionFilter(ValueFilter):
    title = "session"
    parameter_name = "session"
    field = "session_id"


@admin.register(LlmCallEvent)
class LlmCallEventAdmin(ReadOnlyAdmin):
    """Usage and cost review: filter, read the totals and the daily chart, export what you see."""

    list_display = [
        "created_at",
        "user",
        "purpose",
        "model_alias",
        "agent_key",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "credits_burned",
        "billable",
        "status",
        "reconciliation",
        "orphaned",
    ]
    list_filter = [
        "created_at",
        ("user", admin.RelatedOnlyFieldListFilter),
        RoomFilter,
        SessionFilter,
        "model_alias",
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

    def get_urls(self):
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_filtered_csv),
            name="usage_llmcallevent_export",
        )
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context=extra_context)
        changelist = (
            getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        )
        if changelist is not None:
            filtered = changelist.queryset.order_by()
            response.context_data["usage_totals"] = usage_totals(events=filtered)
            response.context_data["usage_chart"] = review_daily_chart(filtered)
        return response

    def export_filtered_csv(self, request):
        queryset = self.get_changelist_instance(request).get_queryset(request)
        return self._csv(queryset, "llm-usage.csv")

    @admin.action(description="Export selected events as CSV")
    def export_selected_csv(self, request, queryset):
        return self._csv(queryset, "llm-usage-selected.csv")

    def _csv(self, queryset, filename: str) -> StreamingHttpResponse:
        fields = [
            "id",
            "created_at",
            "user_id",
            "room_id",
            "session_id",
            "turn_id",
            "agent_key",
            "purpose",
            "model_alias",
            "provider_model",
            "provider_generation_id",
            "input_tokens",
            "output_tokens",
            "tokens_estimated",
            "oe_tokens",
            "cost_usd",
            "credits_burned",
            "provider_cost_usd",
            "provider_final_cost_usd",
            "pricing_version_id",
            "billable",
            "status",
            "error_code",
            "latency_ms",
            "orphaned",
            "reconciliation",
        ]

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        rows = (
            writer.writerow(row) for row in queryset.order_by("created_at").values_list(*fields).iterator()
        )
        response = StreamingHttpResponse(
            itertools.chain([writer.writerow(fields)], rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


@admin.register(UsageDailyRollup)
class UsageDailyRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "user",
        "model_alias",
        "events",
        "failed_events",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "billed_cost_usd",
        "credits_burned",
        "provider_cost_usd",
        "drift_events",
    ]
    list_filter = ["day", "model_alias", ("user", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "day"
    list_select_related = ["user"]


class CreditAccountInline(admin.StackedInline):
    model = CreditAccount
    can_delete = False
    readonly_fields = ["balance", "updated_at"]


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [*BaseUserAdmin.inlines, CreditAccountInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # every user gets a credit account with the opening grant
            credit_account_open(user=obj)
