from django.urls import path

from sessions_app.api.views import SessionViewSet, SummaryViewSet, TurnViewSet, UsageViewSet

urlpatterns = [
    path(
        "rooms/<uuid:room_id>/sessions",
        SessionViewSet.as_view({"get": "list", "post": "create"}, name="Sessions"),
        name="session-list",
    ),
    path(
        "rooms/<uuid:room_id>/sessions/<uuid:session_id>",
        SessionViewSet.as_view({"get": "retrieve", "delete": "destroy"}, name="Session"),
        name="session-detail",
    ),
    path(
        "sessions/<uuid:session_id>/turns",
        TurnViewSet.as_view({"get": "list", "post": "create"}, name="Turns"),
        name="turn-list",
    ),
    path(
        "sessions/<uuid:session_id>/turns/preview",
        TurnViewSet.as_view({"post": "preview"}, name="Turn preview"),
        name="turn-preview",
    ),
    path(
        "sessions/<uuid:session_id>/turns/<uuid:turn_id>",
        TurnViewSet.as_view({"get": "retrieve"}, name="Turn"),
        name="turn-detail",
    ),
    path(
        "sessions/<uuid:session_id>/summaries",
        SummaryViewSet.as_view({"get": "list"}, name="Summaries"),
        name="session-summaries",
    ),
    path(
        "sessions/<uuid:session_id>/usage",
        UsageViewSet.as_view({"get": "list"}, name="Usage"),
        name="session-usage",
    ),
]
