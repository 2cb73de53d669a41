from django.contrib import admin
from django.db.models import Count, Q

from rooms.models import Agent, Room
from usage.admin_review import review_names_register


def room_names(ids: set) -> dict:
    """Room names for the usage review, deleted rooms marked."""
    rooms = Room.objects.filter(pk__in=ids).values_list("pk", "name", "deleted_at")
    return {pk: f"{name} (deleted)" if deleted_at else name for pk, name, deleted_at in rooms}


review_names_register("room", resolve=room_names, admin_url_name="admin:rooms_room_change")


class AgentInline(admin.TabularInline):
    model = Agent
    extra = 0
    fields = ["agent_key", "name", "model_alias", "position", "deleted_at"]
    ordering = ["position", "id"]
    show_change_link = True


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "agent_count", "created_at", "deleted_at"]
    list_filter = ["created_at", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "description", "owner__username", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]
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


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["agent_key", "name", "room", "model_alias", "position", "deleted_at"]
    list_filter = ["model_alias", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["agent_key", "name", "room__name"]
    raw_id_fields = ["room"]
    list_select_related = ["room"]
