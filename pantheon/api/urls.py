from django.urls import path

from pantheon.api.views import (
    ApiRootView,
    HealthDetailView,
    HealthView,
    LogoutAllView,
    LogoutView,
    MeView,
    RegisterView,
    TokenDetailView,
    TokensView,
    TokenView,
)

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("health", HealthView.as_view(), name="health"),
    path("health/detail", HealthDetailView.as_view(), name="health-detail"),
    path("auth/register", RegisterView.as_view(), name="auth-register"),
    path("auth/token", TokenView.as_view(), name="auth-token"),
    path("auth/tokens", TokensView.as_view(), name="auth-tokens"),
    path("auth/tokens/<uuid:token_id>", TokenDetailView.as_view(), name="auth-token-detail"),
    path("auth/logout", LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all", LogoutAllView.as_view(), name="auth-logout-all"),
    path("auth/me", MeView.as_view(), name="auth-me"),
]
