from django.urls import path, register_converter

from rooms.api.views import AgentViewSet, RoomViewSet
from rooms.models import AGENT_KEY_PATTERN


class AgentKeyConverter:
    """Only what can be an agent key reaches a lookup: anything else (``%00`` too) matches no URL and
    is a 404 before any query. The schema shows the pattern."""

    regex = AGENT_KEY_PATTERN.removeprefix("^").removesuffix("$")

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AgentKeyConverter, "agent_key")

urlpatterns = [
    path("rooms", RoomViewSet.as_view({"get": "list", "post": "create"}, name="Rooms"), name="room-list"),
    path(
        "rooms/<uuid:room_id>",
        RoomViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}, name="Room"),
        name="room-detail",
    ),
    path(
        "rooms/<uuid:room_id>/agents",
        AgentViewSet.as_view({"get": "list", "post": "create"}, name="Agents"),
        name="agent-list",
    ),
    path(
        "rooms/<uuid:room_id>/agents/<agent_key:agent_key>",
        AgentViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}, name="Agent"
        ),
        name="agent-detail",
    ),
]
