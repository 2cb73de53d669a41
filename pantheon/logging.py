"""Log correlation: every record carries the id of the turn being executed (or "-")."""

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

current_turn_id: contextvars.ContextVar[str] = contextvars.ContextVar("current_turn_id", default="-")


class TurnContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "turn_id"):
            record.turn_id = current_turn_id.get()
        return True


@contextmanager
def turn_log_context(turn_id: object) -> Iterator[None]:
    token = current_turn_id.set(str(turn_id))
    try:
        yield
    finally:
        current_turn_id.reset(token)
