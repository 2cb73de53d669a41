"""Log correlation: every record carries the ids of the work it belongs to — the request, its user,
the session and the turn ("-" where there is none) — so one turn can be followed across the web
process and the worker, in text (``key=value``) or JSON lines (``LOG_FORMAT``).

The ids live in a context variable: the request middleware binds the request id and the session,
authentication binds the user, the turn engine the turn (``turn_log_context``), and Celery carries
them to the tasks a request enqueues (``pantheon.celery``).
"""

import contextvars
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import MappingProxyType
from typing import Any

LOG_FIELDS = ("request_id", "user_id", "session_id", "turn_id")

_EMPTY: MappingProxyType[str, str] = MappingProxyType({})
_bound: contextvars.ContextVar[MappingProxyType[str, str]] = contextvars.ContextVar(
    "log_context", default=_EMPTY
)


class LogContextFilter(logging.Filter):
    """Puts the bound ids on every record; a field given explicitly (``extra=``) is kept. A record
    written outside the request's context that carries the request (Django's own line about a 4xx
    or 5xx response) takes the ids the request kept (``RequestContextMiddleware``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _bound.get() or getattr(getattr(record, "request", None), "log_context", None) or _EMPTY
        for name in LOG_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, bound.get(name, "-"))
        return True


def _fields(values: dict[str, Any]) -> dict[str, str]:
    unknown = set(values) - set(LOG_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields: {sorted(unknown)}")
    return {name: str(value) for name, value in values.items() if value is not None and value != ""}


def log_context_bind(**fields: Any) -> None:
    """Add ids to the current context, until it ends (a request runs in a context of its own)."""
    _bound.set(MappingProxyType({**_bound.get(), **_fields(fields)}))


def log_context_replace(fields: dict[str, str]) -> None:
    """Make ``fields`` the whole log context (a worker starting or ending a task)."""
    _bound.set(MappingProxyType(_fields(fields)))


def log_context_current() -> dict[str, str]:
    return dict(_bound.get())


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ids for the duration of a block."""
    token = _bound.set(MappingProxyType({**_bound.get(), **_fields(fields)}))
    try:
        yield
    finally:
        _bound.reset(token)


def turn_log_context(turn_id: object) -> AbstractContextManager[None]:
    return log_context(turn_id=turn_id)


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` setting: one console handler, text (``key=value``) or JSON lines."""
    if log_format not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"log_context": {"()": "pantheon.logging.LogContextFilter"}},
        "formatters": {
            "text": {
                "format": (
                    "%(asctime)s level=%(levelname)s logger=%(name)s request=%(request_id)s "
                    "user=%(user_id)s session=%(session_id)s turn=%(turn_id)s %(message)s"
                ),
            },
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": (
                    "%(asctime)s %(levelname)s %(name)s %(message)s "
                    "%(request_id)s %(user_id)s %(session_id)s %(turn_id)s"
                ),
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["log_context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "INFO"}},
    }
