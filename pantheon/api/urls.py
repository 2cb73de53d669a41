from django.urls import path

from pantheon.api.views import ApiRootView, HealthView, MeView, RegisterView, TokenView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("health", HealthView.as_view(), name="health"),
    path("auth/register", RegisterView.as_view(), name="auth-register"),
    path("auth/token", TokenView.as_view(), name="auth-token"),
    path("auth/me", MeView.as_view(), name="auth-me"),
]
