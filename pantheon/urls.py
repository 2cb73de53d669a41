from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from openai_compat.api.views import not_found as openai_not_found
from pantheon.telemetry.views import metrics_view
from usage.forms import StaffFirstAuthenticationForm

api_v1 = [
    path("", include("pantheon.api.urls")),
    path("", include("usage.api.urls")),
    path("", include("rooms.api.urls")),
    path("", include("sessions_app.api.urls")),
    path("", include("openai_compat.api.key_urls")),
]

admin.site.site_header = "Pantheon administration"
admin.site.site_title = "Pantheon admin"
admin.site.login_form = StaffFirstAuthenticationForm

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="api-root", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/openai/v1/", include("openai_compat.api.urls")),
    path("api/openai/v1", openai_not_found),  # the base URL itself: no slash to redirect a POST to
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # DRF's login view, under Pantheon's name; its logout as it is.
    path("api-auth/login/", LoginView.as_view(template_name="pantheon/login.html"), name="api-login"),
    path("api-auth/", include("rest_framework.urls")),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "pantheon.api.exceptions.json_bad_request"
handler404 = "pantheon.api.exceptions.json_not_found"
handler500 = "pantheon.api.exceptions.json_server_error"
