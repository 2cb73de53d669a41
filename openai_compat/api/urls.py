from django.urls import path, re_path

from openai_compat.api.views import ChatCompletionView, ModelDetailView, ModelListView, not_found

urlpatterns = [
    path("models", ModelListView.as_view(), name="openai-model-list"),
    path("models/<str:model_id>", ModelDetailView.as_view(), name="openai-model-detail"),
    path("chat/completions", ChatCompletionView.as_view(), name="openai-chat-completions"),
    re_path(r"^(?P<path>.*)$", not_found),
]
