"""Refuse, before any view or session lookup, request parts that no valid request has and that the
database cannot store.

PostgreSQL text cannot hold NUL: a ``%00`` that reaches a query (an agent key in a path, a token, a
session cookie, a filter) fails with ``DataError`` — a 500. Rather than hoping every lookup checks
its input, this middleware answers first:

- a path with a control character (``%00``, ``%0A`` …) is a URL nothing is served at: 404;
- a NUL in the query string, a header or a cookie is a malformed request: 400 ``invalid``.

Bodies are the serializers' business (DRF's ``CharField`` refuses NUL and lone surrogates).
"""

import re

from django.http import JsonResponse

from pantheon.api.exceptions import json_not_found

_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NUL = "\x00"


def _nul_in_request_meta(request) -> str | None:
    """Where a NUL was found outside the path and body, or None."""
    for key, values in request.GET.lists():
        if NUL in key or any(NUL in value for value in values):
            return "the query string"
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and NUL in value:
            return "a header"
    for key, value in request.COOKIES.items():
        if NUL in key or NUL in value:
            return "a cookie"
    return None


class InputGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _CONTROL_CHARACTER.search(request.path_info):
            return json_not_found(request)
        where = _nul_in_request_meta(request)
        if where is not None:
            return JsonResponse(
                {"detail": f"Null characters are not allowed in {where}.", "code": "invalid"}, status=400
            )
        return self.get_response(request)
