from django.urls import path

from openai_compat.api.keys import ApiKeyViewSet

urlpatterns = [
    path(
        "openai/keys",
        ApiKeyViewSet.as_view({"get": "list", "post": "create"}, name="API keys"),
        name="openai-key-list",
    ),
    path(
        "openai/keys/<int:key_id>",
        ApiKeyViewSet.as_view({"get": "retrieve", "delete": "destroy"}, name="API key"),
        name="openai-key-detail",
    ),
]
