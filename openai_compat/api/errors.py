"""Errors in the OpenAI shape, ``{"error": {"message", "type", "param", "code"}}``, with the statuses
and codes of the native API (``pantheon.api.exceptions`` decides both; this only reshapes). The
native body's extra fields (``fields``, ``available``, ``turn_id`` …) stay in the error object."""

import logging
from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from pantheon.api.exceptions import application_error_body, application_error_status, exception_handler
from pantheon.errors import ApplicationError

logger = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def first_problem(fields: Any, path: str = "") -> tuple[str, str] | None:
    """The first failing field of a validation error as OpenAI names it (``messages.[2].content``)
    and its message; None if there is no problem in ``fields``."""
    if isinstance(fields, dict):
        items = ((f"[{k}]" if str(k).isdigit() else str(k), v) for k, v in fields.items())
    elif isinstance(fields, list):
        if fields and all(isinstance(v, str) for v in fields):
            return path, str(fields[0])
        items = ((f"[{i}]", v) for i, v in enumerate(fields))
    else:
        return (path, str(fields)) if fields else None
    for name, value in items:
        if name == "non_field_errors":
            name, path = path or name, ""
        found = first_problem(value, f"{path}.{name}" if path else name)
        if found is not None:
            return found
    return None


def openai_error_body(native: dict[str, Any], status_code: int) -> dict[str, Any]:
    extra = dict(native)
    message, code = extra.pop("detail", ""), extra.pop("code", "error")
    fields = extra.get("fields")
    param = None
    if isinstance(fields, dict) and (problem := first_problem(fields)) is not None:
        param, detail = problem
        if param == "non_field_errors":
            param, message = None, detail
        else:
            message = f"{param}: {detail}"
    error_type = ERROR_TYPES.get(status_code) or (
        "server_error" if status_code >= 500 else "invalid_request_error"
    )
    return {
        "error": {
            "message": message,
            "type": error_type,
            "param": param,
            "code": code,
            **extra,
        }
    }


def openai_application_error_body(exc: ApplicationError) -> dict[str, Any]:
    return openai_error_body(application_error_body(exc), application_error_status(exc))


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The project's handler, reshaped; an unexpected exception is logged and answered 500 in the
    same shape (a client of this endpoint understands no other)."""
    response = exception_handler(exc, context)
    if response is None:
        logger.error("unexpected error in the OpenAI-compatible endpoint", exc_info=exc)
        set_rollback()
        response = Response(
            {"detail": "Internal server error.", "code": "server_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    response.data = openai_error_body(response.data, response.status_code)
    return response
