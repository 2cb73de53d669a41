"""gunicorn settings read from the working directory (the image's /app): how the web process logs
and what happens to a worker's metrics when it exits. The command line (Dockerfile, compose) keeps
the bind, workers, threads and timeout."""

import os

from pantheon.logging import logging_config

# gunicorn's own lines (start-up, worker exits, the access log) in the app's format: JSON lines in
# production (LOG_FORMAT defaults to json under production settings), key=value otherwise.
_production = os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production")
_config = logging_config(
    log_format=os.environ.get("LOG_FORMAT", "json" if _production else "text"),
    level=os.environ.get("LOG_LEVEL", "INFO"),
)
_config["loggers"].update(
    {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    }
)
logconfig_dict = _config


def child_exit(server, worker):
    """A worker exited: its live gauges go with it (its counters stay in the totals). Needed with
    PROMETHEUS_MULTIPROC_DIR (metrics across workers)."""
    from pantheon.telemetry.metrics import process_dead

    process_dead(worker.pid)
