"""``GET /metrics``: the Prometheus exposition, for a scraper holding ``METRICS_TOKEN``.

Not public: with no token configured the endpoint does not exist (404), and a request without the
token is refused (401). A scraper sends ``Authorization: Bearer <METRICS_TOKEN>``.
"""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pantheon.telemetry.metrics import metrics_registry


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = settings.METRICS_TOKEN
    if not expected:
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        response = JsonResponse(
            {"detail": "The metrics token is missing or wrong.", "code": "not_authenticated"}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
