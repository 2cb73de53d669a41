"""Progress of a command's long loops: a bar redrawn in place on a terminal, a line every
``every`` items otherwise (logs and CI keep a readable record either way, each count once); and
``logs_held``, which keeps log lines out of a command's report until it is written."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import OutputWrapper


@contextmanager
def logs_held(*names: str) -> Iterator[list[logging.LogRecord]]:
    """The records of the loggers ``names`` (and their children) wait until the block ends, then
    go to the log as they would have: on a terminal, where the log (stderr) and the report (stdout)
    share the screen, no log line cuts the report's lines or table."""
    held: list[logging.LogRecord] = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    hold = Hold()
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.handlers, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [hold], False
    try:
        yield held
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
        for record in held:
            logging.getLogger(record.name).handle(record)


class Progress:
    def __init__(self, out: OutputWrapper, *, label: str, every: int = 100, width: int = 30) -> None:
        self.out, self.label, self.every, self.width = out, label, every, width
        self.tty = out.isatty()
        self.shown = -1  # the last count written as a line (off a terminal each count is written once)

    def __call__(self, done: int, total: int) -> None:
        if not total:
            return
        if self.tty:
            filled = self.width * done // total
            bar = "#" * filled + "-" * (self.width - filled)
            self.out.write(f"\r  {self.label} [{bar}] {done}/{total}", ending="\n" if done == total else "")
        elif done != self.shown and (done == total or (done and done % self.every == 0)):
            self.shown = done
            self.out.write(f"  {self.label}: {done}/{total}")
        self.out.flush()
