from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from usage.models import CreditAccount, CreditLedgerEntry, LlmCallEvent, LlmModel, ModelPrice, PricingVersion
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


@admin.register(LlmCallEvent)
class LlmCallEventAdmin(ReadOnlyAdmin):
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
        "orphaned",
    ]
    list_filter = [
        "purpose",
        "billable",
        "status",
        "orphaned",
        "tokens_estimated",
        "model_alias",
        "created_at",
    ]
    search_fields = ["user__username", "provider_generation_id", "turn_id", "session_id", "room_id"]
    date_hierarchy = "created_at"
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
