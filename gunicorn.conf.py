"""Gunicorn's production settings, in one place: the container (Dockerfile, docker-compose.yml) and
``make bench`` all run with these. Gunicorn reads this file by itself when started from the
repository root; the command line adds only what differs per place (``--bind``).

gevent, not threads (``WEB_WORKER_CLASS``, default ``gevent``): a turn waits on the LLM for up to the
gateway deadline × agents, and under the gevent worker that wait costs a greenlet (a few kilobytes),
not a thread — psycopg (≥ 3.1.14), redis-py and the ``openai`` client's httpx all yield to the others
once gunicorn's worker has patched the standard library, which it does before it loads the app. Each
worker holds up to ``worker_connections`` requests at once; turns beyond ``TURNS_IN_FLIGHT_PER_PROCESS``
are refused with 503 ``server_busy``; a streamed turn runs in a greenlet of its own. The database
connections are a pool per worker (``DATABASE_POOL_MAX_SIZE``) that a turn gives back while the model
thinks, so workers × pool bounds them (docs/runbook.md, "Capacity").

``WEB_WORKER_CLASS=gthread`` keeps the thread-bound server (``WEB_THREADS`` threads per worker, each
turn holding one — and a streamed turn one more of its own — for its whole life): 3 × 8 threads serve
24 turns at once.

It also sends gunicorn's own lines (start-up, worker exits, the access log) to the app's log format —
JSON lines in production (LOG_FORMAT defaults to json under production settings), key=value
otherwise — and drops a dead worker's live gauges from the metrics.
"""

import os

from pantheon.logging import logging_config

worker_class = os.environ.get("WEB_WORKER_CLASS", "gevent")
# gevent: one process per core the process may run on (a turn's own work is CPU, its wait is not;
# more processes than cores only share the cores less evenly: docs/performance.md, "Capacity").
# Behind a CPU quota (a container's --cpus) the cores seen here are the host's: set WEB_WORKERS.
# gthread: 3, as the thread-bound server always ran.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
workers = int(os.environ.get("WEB_WORKERS") or (_cores if worker_class == "gevent" else 3))
threads = int(os.environ.get("WEB_THREADS", 8))  # gthread only
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", 1000))  # gevent: requests at once
_accept_batch = max(int(os.environ.get("WEB_ACCEPT_BATCH") or 32), 1)  # gevent: accepted at a time
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
    API's JSON shape, not its HTML page; a gevent worker accepts connections in batches of
    ``WEB_ACCEPT_BATCH`` (pantheon/serving.py)."""
    from pantheon.serving import accept_batch_install, json_errors_install

    json_errors_install()
    accept_batch_install(worker, _accept_batch)


def child_exit(server, worker):
    """A worker exited: its live gauges go with it (its counters stay in the totals). Needed with
    PROMETHEUS_MULTIPROC_DIR (metrics across workers)."""
    from pantheon.telemetry.metrics import process_dead

    process_dead(worker.pid)
