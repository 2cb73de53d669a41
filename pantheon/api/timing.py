"""``Server-Timing`` for turn responses: time waiting on the LLM vs Pantheon's own (db and app)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection


@dataclass
class RequestTiming:
    started: float
    db_seconds: float = 0.0
    llm_seconds: float = 0.0

    def header(self) -> str:
        total = time.perf_counter() - self.started
        app = max(total - self.db_seconds - self.llm_seconds, 0.0)
        return (
            f"llm;dur={self.llm_seconds * 1000:.1f}, db;dur={self.db_seconds * 1000:.1f}, "
            f"app;dur={app * 1000:.1f}, total;dur={total * 1000:.1f}"
        )


@contextmanager
def request_timing() -> Iterator[RequestTiming]:
    timing = RequestTiming(started=time.perf_counter())

    def timed(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timing.db_seconds += time.perf_counter() - t0

    with connection.execute_wrapper(timed):
        yield timing
