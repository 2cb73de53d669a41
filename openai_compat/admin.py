from django.contrib import admin, messages

from openai_compat.models import ApiKey, KeptReply
from openai_compat.services import api_keys_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made by their users (the secret is shown to them once); here they are reviewed and
    revoked."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        count = api_keys_revoke(keys=queryset)
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)


@admin.register(KeptReply)
class KeptReplyAdmin(admin.ModelAdmin):
    """Turns whose reply the client kept only part of (read only)."""

    list_display = ["turn", "kept_chars", "created_at"]
    readonly_fields = ["turn", "full_output", "kept_chars", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
