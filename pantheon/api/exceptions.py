"""One error shape for the whole API: ``{"detail": str, "code": str, ...}``.

Services raise ``pantheon.errors.ApplicationError`` subclasses (no HTTP in them); DRF raises its own
exceptions; both are turned into responses here, in one place, and only here do they get a status.
"""

import logging
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from pantheon import errors

logger = logging.getLogger(__name__)

# Each kind of domain error and its status; a subclass inherits its base's (looked up along the MRO).
STATUS_BY_ERROR: dict[type[errors.ApplicationError], int] = {
    errors.ApplicationError: status.HTTP_400_BAD_REQUEST,
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.Forbidden: status.HTTP_403_FORBIDDEN,
    errors.Conflict: status.HTTP_409_CONFLICT,
    errors.RuleViolation: status.HTTP_422_UNPROCESSABLE_ENTITY,
    errors.PaymentRequired: status.HTTP_402_PAYMENT_REQUIRED,
    errors.TooManyRequests: status.HTTP_429_TOO_MANY_REQUESTS,
    errors.UpstreamUnavailable: status.HTTP_502_BAD_GATEWAY,
    errors.ServiceUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def application_error_status(exc: errors.ApplicationError) -> int:
    return next(STATUS_BY_ERROR[cls] for cls in type(exc).__mro__ if cls in STATUS_BY_ERROR)


def application_error_body(exc: errors.ApplicationError) -> dict[str, Any]:
    return {"detail": exc.message, "code": exc.code, **exc.extra}


def application_error_headers(exc: errors.ApplicationError) -> dict[str, str]:
    return {} if exc.retry_after_seconds is None else {"Retry-After": str(exc.retry_after_seconds)}


_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "invalid",
    exceptions.ValidationError: "invalid",
}


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _encodable(value: Any) -> Any:
    """An error body that can be sent: a message that echoes the input (``"\\ud800" is not a valid
    choice``) may carry a lone surrogate, which no UTF-8 response can hold; it becomes U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value


def _first_message(problems: Any) -> str:
    if isinstance(problems, dict):
        for field, value in problems.items():
            message = _first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(problems, list) and problems:
        return _first_message(problems[0])
    return str(problems)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, OperationalError | InterfaceError):
        exc = database_unavailable(exc)

    if isinstance(exc, errors.ApplicationError):
        set_rollback()
        return Response(
            _encodable(application_error_body(exc)),
            status=application_error_status(exc),
            headers=application_error_headers(exc),
        )

    if not isinstance(exc, exceptions.APIException):
        return None  # a genuine bug: let Django answer 500 and log it

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    if code is None:
        code = exc.default_code if isinstance(exc.default_code, str) else "error"

    if isinstance(exc, exceptions.ValidationError):
        problems = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = {"detail": _first_message(problems), "code": code, "fields": problems}
    else:
        body = {"detail": str(exc.detail), "code": code}

    set_rollback()
    return Response(_encodable(body), status=exc.status_code, headers=headers)


def database_unavailable(exc: Exception) -> errors.DatabaseUnavailable:
    """The database failed the request (down, unreachable, no pooled connection in time, a statement
    cut by the server): 503 with ``Retry-After``, not a 500. The transaction is rolled back as for any
    error; the failure is logged here, since no 500 will log it."""
    logger.error("database unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:200])
    return errors.DatabaseUnavailable(retry_after_seconds=settings.DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS)


class ApplicationErrorMiddleware:
    """A domain error raised under a plain Django view (the admin's and the browsable API's login
    forms: a locked login) answers in the API's shape with its status, as under a DRF view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, errors.ApplicationError):
            return None
        response = JsonResponse(
            _encodable(application_error_body(exception)), status=application_error_status(exception)
        )
        for name, value in application_error_headers(exception).items():
            response[name] = value
        return response


def json_bad_request(request, exception=None):
    """Django-level 400 (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE) in the API's error shape."""
    return JsonResponse({"detail": "Bad request (the body may be too large).", "code": "invalid"}, status=400)


def _in_admin(request) -> bool:
    """The admin is HTML: its errors are pages, not JSON."""
    try:
        return request.path.startswith(reverse("admin:index"))
    except NoReverseMatch:
        return False


def _browser_outside_api(request) -> bool:
    """A page a browser asked for outside the API's paths (``/api/…`` always answers JSON)."""
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


def json_not_found(request, exception=None):
    """Django-level 404 (no URL matched, e.g. a malformed id) in the API's error shape; an HTML page
    inside the admin, and for a browser outside the API's paths."""
    if _in_admin(request):
        return defaults.page_not_found(request, exception, template_name="admin/404.html")
    if _browser_outside_api(request):
        return defaults.page_not_found(request, exception, template_name="pantheon/404.html")
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def json_server_error(request):
    if _in_admin(request):
        return defaults.server_error(request, template_name="admin/500.html")
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
