from django.urls import path

from rooms.api.views import AgentViewSet, RoomViewSet

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
        "rooms/<uuid:room_id>/agents/<str:agent_key>",
        AgentViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}, name="Agent"
        ),
        name="agent-detail",
    ),
]
