from django.urls import path

from usage.api.views import ModelListView

urlpatterns = [path("models", ModelListView.as_view(), name="model-list")]
