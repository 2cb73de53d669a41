"""``Server-Timing`` on every response: time waiting on the LLM vs Pantheon's own (db and app).

The middleware times the whole request (authentication included) and counts its SQL queries; the
LLM wait arrives through ``pantheon.observability`` (every ``LlmCallObserved``), so the domain never
imports this module.
"""

import contextvars
import time
from dataclasses import dataclass

from django.db import connection

from pantheon.observability import LlmCallObserved, listen


@dataclass
class RequestTiming:
    started: float
    db_seconds: float = 0.0
    db_queries: int = 0
    llm_seconds: float = 0.0

    def header(self) -> str:
        total = time.perf_counter() - self.started
        app = max(total - self.db_seconds - self.llm_seconds, 0.0)
        return (
            f"llm;dur={self.llm_seconds * 1000:.1f}, "
            f'db;dur={self.db_seconds * 1000:.1f};desc="{self.db_queries} queries", '
            f"app;dur={app * 1000:.1f}, total;dur={total * 1000:.1f}"
        )


_current: contextvars.ContextVar[RequestTiming | None] = contextvars.ContextVar(
    "request_timing", default=None
)


def request_timing_current() -> RequestTiming | None:
    return _current.get()


def _llm_call_timed(event: LlmCallObserved) -> None:
    timing = _current.get()
    if timing is not None:
        timing.llm_seconds += event.seconds


listen(LlmCallObserved, _llm_call_timed)


class ServerTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timing = RequestTiming(started=time.perf_counter())

        def timed(execute, sql, params, many, context):
            t0 = time.perf_counter()
            timing.db_queries += 1
            try:
                return execute(sql, params, many, context)
            finally:
                timing.db_seconds += time.perf_counter() - t0

        token = _current.set(timing)
        try:
            with connection.execute_wrapper(timed):
                response = self.get_response(request)
        finally:
            _current.reset(token)
        response["Server-Timing"] = timing.header()
        return response
