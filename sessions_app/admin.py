from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from pantheon.admin import ReadOnlyAdmin
from sessions_app.models import ChatSession, Message, SessionSummary, Turn, TurnContextAudit
from usage.admin_review import review_names_register
from usage.formatting import usd_display
from usage.models import LlmCallEvent


def session_names(ids: set) -> dict:
    """Session titles for the usage review (untitled ones by their room), deleted sessions marked."""
    sessions = ChatSession.objects.filter(pk__in=ids).values_list("pk", "title", "room__name", "deleted_at")
    return {
        pk: (title or f"untitled session in {room}") + (" (deleted)" if deleted_at else "")
        for pk, title, room, deleted_at in sessions
    }


def turn_names(ids: set) -> dict:
    """``Session title #3``: a turn by its session and its place in it."""
    turns = Turn.objects.filter(pk__in=ids).values_list("pk", "turn_index", "session_id")
    sessions = session_names({session_id for _, _, session_id in turns})
    return {pk: f"{sessions.get(session_id, 'session')} #{index}" for pk, index, session_id in turns}


review_names_register(
    "session", resolve=session_names, admin_url_name="admin:sessions_app_chatsession_change"
)
review_names_register("turn", resolve=turn_names, admin_url_name="admin:sessions_app_turn_change")


class ReadOnlyInline(admin.TabularInline):
    """Turns, messages and audits are written by the turn engine only."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class TurnInline(ReadOnlyInline):
    model = Turn
    fields = ["turn_index", "mode", "status", "user_input", "created_at"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["turn_index"]


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "room", "last_turn_index", "summary_due_through", "created_at", "deleted_at"]
    list_filter = ["created_at", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "id", "room__name", "room__owner__username"]
    readonly_fields = [
        "id",
        "room_link",
        "last_turn_index",
        "claim_token",
        "claim_expires_at",
        "created_at",
        "updated_at",
    ]
    raw_id_fields = ["room"]
    inlines = [TurnInline]
    list_select_related = ["room"]

    @admin.display(description="room (open)")
    def room_link(self, session):
        if session.room_id is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:rooms_room_change", args=[session.room_id]), session.room
        )


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ["order", "role", "agent_key", "model_alias", "content"]
    readonly_fields = fields
    ordering = ["order"]


class AuditInline(ReadOnlyInline):
    model = TurnContextAudit
    fields = [
        "agent_key",
        "model_alias",
        "budget_tokens",
        "tokens_before",
        "tokens_after",
        "summary_used",
        "pruned_turn_count",
        "rejected",
        "summary_triggered",
    ]
    readonly_fields = fields


@admin.register(Turn)
class TurnAdmin(ReadOnlyAdmin):
    """Turns are written by the turn engine only (a deleted turn would leave a gap in the index)."""

    list_display = ["__str__", "session", "mode", "status", "created_at"]
    list_filter = ["mode", "status", "created_at"]
    search_fields = ["id", "session__id", "user_input"]
    readonly_fields = [f.name for f in Turn._meta.fields] + ["usage_events"]
    inlines = [MessageInline, AuditInline]
    list_select_related = ["session"]

    @admin.display(description="usage events")
    def usage_events(self, turn):
        events = LlmCallEvent.objects.filter(turn_id=turn.pk).order_by("created_at")
        rows = (
            (
                reverse("admin:usage_llmcallevent_change", args=[e.pk]),
                e.purpose,
                e.agent_key or "-",
                e.model_alias,
                e.input_tokens,
                e.output_tokens,
                usd_display(e.cost_usd),
                e.status,
            )
            for e in events
        )
        line = '<div><a href="{}">{} @{} {}</a> — {} in / {} out — {} USD — {}</div>'
        return format_html_join("\n", line, rows) or "—"


@admin.register(SessionSummary)
class SessionSummaryAdmin(ReadOnlyAdmin):
    list_display = [
        "session",
        "covers_through_turn_index",
        "summary_used_fallback",
        "extraction_used_fallback",
    ]
    readonly_fields = [f.name for f in SessionSummary._meta.fields]


@admin.register(TurnContextAudit)
class TurnContextAuditAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "agent_key",
        "model_alias",
        "budget_tokens",
        "tokens_before",
        "tokens_after",
        "rejected",
    ]
    list_filter = ["rejected", "summary_used", "summary_triggered"]
    readonly_fields = [f.name for f in TurnContextAudit._meta.fields]
