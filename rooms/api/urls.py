from django.urls import path

from rooms.api.views import AgentViewSet, RoomViewSet

urlpatterns = [
    path("rooms", RoomViewSet.as_view({"get": "list", "post": "create"}), name="room-list"),
    path(
        "rooms/<uuid:room_id>",
        RoomViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="room-detail",
    ),
    path(
        "rooms/<uuid:room_id>/agents",
        AgentViewSet.as_view({"get": "list", "post": "create"}),
        name="agent-list",
    ),
    path(
        "rooms/<uuid:room_id>/agents/<str:agent_key>",
        AgentViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="agent-detail",
    ),
]
