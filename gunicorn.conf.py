"""Gunicorn's production settings, in one place: the container (Dockerfile, docker-compose.yml) and
``make bench`` all run with these. Gunicorn reads this file by itself when started from the
repository root; the command line adds only what differs per place (``--bind``).

Threads, not sync workers: a turn waits on the LLM for up to the gateway deadline × agents, and a
threaded worker keeps answering (health included) meanwhile instead of being killed at ``timeout``.
A turn holds one of these threads while it runs; a streamed turn also runs in a thread of its own,
outside this pool (the pool's thread writes the events), so 3 × 8 threads serve 24 turns at once,
plain or streamed (docs/streaming.md, "Serving").

It also sends gunicorn's own lines (start-up, worker exits, the access log) to the app's log format —
JSON lines in production (LOG_FORMAT defaults to json under production settings), key=value
otherwise — and drops a dead worker's live gauges from the metrics.
"""

import os

from pantheon.logging import logging_config

worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", 3))
threads = int(os.environ.get("WEB_THREADS", 8))
timeout = 300
accesslog = "-"

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


def post_worker_init(worker):
    """Gunicorn's own error answers (a header over its limit, a malformed request line …) in the
    API's JSON shape, not its HTML page (pantheon/serving.py)."""
    from pantheon.serving import json_errors_install

    json_errors_install()


def child_exit(server, worker):
    """A worker exited: its live gauges go with it (its counters stay in the totals). Needed with
    PROMETHEUS_MULTIPROC_DIR (metrics across workers)."""
    from pantheon.telemetry.metrics import process_dead

    process_dead(worker.pid)
