"""``Server-Timing`` on every response: time waiting on the LLM vs Pantheon's own (db and app).

The middleware times the whole request (authentication included) and counts its SQL queries; the
LLM wait arrives through ``pantheon.observability`` (every ``LlmCallObserved``), so the domain never
imports this module.
"""

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
        figures = self.snapshot()
        return (
            f"llm;dur={figures['llm_ms']}, "
            f'db;dur={figures["db_ms"]};desc="{self.db_queries} queries", '
            f"app;dur={figures['app_ms']}, total;dur={figures['total_ms']}"
        )

    def snapshot(self) -> dict:
        """The figures so far, in milliseconds: a turn's body carries them (``timing``), since the
        headers of a streamed response are long gone when its turn completes."""
        total = time.perf_counter() - self.started
        app = max(total - self.db_seconds - self.llm_seconds, 0.0)
        return {
            "llm_ms": round(self.llm_seconds * 1000, 1),
            "db_ms": round(self.db_seconds * 1000, 1),
            "db_queries": self.db_queries,
            "app_ms": round(app * 1000, 1),
            "total_ms": round(total * 1000, 1),
        }

    @contextmanager
    def counting(self, conn=None) -> Iterator[None]:
        """Count the SQL statements of ``conn`` (this thread's connection by default) into these
        figures: the request's own, and a streamed turn's thread."""

        def timed(execute, sql, params, many, context):
            t0 = time.perf_counter()
            self.db_queries += 1
            try:
                return execute(sql, params, many, context)
            finally:
                self.db_seconds += time.perf_counter() - t0

        with (conn or connection).execute_wrapper(timed):
            yield


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
        token = _current.set(timing)
        try:
            with timing.counting():
                response = self.get_response(request)
        finally:
            _current.reset(token)
        response["Server-Timing"] = timing.header()
        return response
