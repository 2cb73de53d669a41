"""Every request gets an id (the client's ``X-Request-ID`` when it is sane, a new one otherwise),
echoed in the response and carried by every log line of the request and of the tasks it enqueues.

The request runs in a context of its own, so what it binds for the logs (the session from the URL,
the user at authentication) ends with it.
"""

import contextvars
import re
import uuid

from pantheon.logging import log_context_bind, log_context_current

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from a client or a proxy: short, and nothing that could forge or break a log line.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")


def request_id_for(value: str | None) -> str:
    if value and SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        response = contextvars.copy_context().run(self._respond, request, request_id)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def _respond(self, request, request_id: str):
        log_context_bind(request_id=request_id)
        try:
            return self.get_response(request)
        finally:
            # Django logs a 4xx/5xx response (logger django.request) after this middleware has
            # returned, outside its context: the record carries the request, and the ids with it.
            request.log_context = log_context_current()

    def process_view(self, request, view_func, view_args, view_kwargs):
        if session_id := view_kwargs.get("session_id"):
            log_context_bind(session_id=session_id)
