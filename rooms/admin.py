from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from rooms.models import Agent, Room
from usage.admin_review import review_names_register
from usage.models import LlmModel

SESSIONS_SHOWN = 20


def room_names(ids: set) -> dict:
    """Room names for the usage review, deleted rooms marked."""
    rooms = Room.objects.filter(pk__in=ids).values_list("pk", "name", "deleted_at")
    return {pk: f"{name} (deleted)" if deleted_at else name for pk, name, deleted_at in rooms}


review_names_register("room", resolve=room_names, admin_url_name="admin:rooms_room_change")


def model_alias_choices(current: str = "") -> list[tuple[str, str]]:
    """The active catalog's aliases (``deepseek — DeepSeek V3``); an agent's current alias that has
    left the catalog stays selectable, marked, so opening the agent does not change it."""
    choices = [
        (alias, f"{alias} — {name}" if name else alias)
        for alias, name in LlmModel.objects.filter(is_active=True)
        .order_by("alias")
        .values_list("alias", "display_name")
    ]
    if current and current not in {alias for alias, _ in choices}:
        choices.append((current, f"{current} (not in the active catalog)"))
    return choices


class AgentAdminForm(forms.ModelForm):
    """The model alias is a choice of the active catalog, not free text (the admin gives the model
    and the fields)."""

    model_alias = forms.ChoiceField(choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_alias"].choices = model_alias_choices(
            self.instance.model_alias if self.instance.pk else ""
        )
        self.fields["model_alias"].help_text = "A model of the active catalog (Usage › LLM models)."


class AgentInline(admin.TabularInline):
    model = Agent
    form = AgentAdminForm
    extra = 0
    fields = ["agent_key", "name", "model_alias", "position", "deleted_at"]
    ordering = ["position", "id"]
    show_change_link = True


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "agent_count", "created_at", "deleted_at"]
    list_filter = ["created_at", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "description", "owner__username", "id"]
    readonly_fields = ["id", "sessions", "created_at", "updated_at"]
    raw_id_fields = ["owner"]
    inlines = [AgentInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(live_agents=Count("agents", filter=Q(agents__deleted_at__isnull=True)))
        )

    @admin.display(description="agents", ordering="live_agents")
    def agent_count(self, room):
        return room.live_agents

    @admin.display(description="sessions")
    def sessions(self, room):
        """The room's sessions, newest first, each linked; all of them in the session list."""
        if room.pk is None:
            return "—"
        sessions = list(
            room.sessions.order_by("-created_at").values_list("pk", "title", "deleted_at")[
                : SESSIONS_SHOWN + 1
            ]
        )
        if not sessions:
            return "no sessions yet"
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (
                    reverse("admin:sessions_app_chatsession_change", args=[pk]),
                    (title or "untitled session") + (" (deleted)" if deleted_at else ""),
                )
                for pk, title, deleted_at in sessions[:SESSIONS_SHOWN]
            ),
        )
        every = reverse("admin:sessions_app_chatsession_changelist") + f"?room__id__exact={room.pk}"
        return format_html('{} — <a href="{}">all sessions of this room</a>', links, every)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentAdminForm
    list_display = ["agent_key", "name", "room", "model_alias", "position", "deleted_at"]
    list_filter = ["model_alias", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["agent_key", "name", "room__name"]
    raw_id_fields = ["room"]
    list_select_related = ["room"]
