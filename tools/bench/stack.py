"""What the bench runs against, all on 127.0.0.1: its own PostgreSQL database, a Redis database for
the broker and the cache, the fake OpenAI-compatible server, and gunicorn with the production
settings."""

import os
import runpy
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pantheon.testing.processes import free_port, spawn, stop
from tools.bench.calls import BenchError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/pantheon_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"
GUNICORN_PRODUCTION = ROOT / "gunicorn.conf.py"
GUNICORN_BENCH = Path(__file__).resolve().parent / "gunicorn_conf.py"
# Rates no bench client can reach: the throttles still run (and cost what they cost), never answer.
UNREACHABLE_RATE = "10000000/min"


def database_ensure(url: str) -> None:
    """Create the bench's database if it does not exist yet."""
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    with psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=cfg["PORT"] or 5432,
        user=cfg["USER"] or "postgres",
        password=cfg["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def queue_purge(broker_url: str) -> None:
    """Drop the summary tasks the run queued (no worker consumes them here)."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=2) as conn:
        conn.default_channel.queue_purge("celery")


def environment(*, database_url: str, broker_url: str, llm_base_url: str) -> dict[str, str]:
    """The environment of the bench's Django (this process and gunicorn): production settings on
    loopback, summaries queued for a worker as in production (none runs; the queue is purged)."""
    return {
        "DJANGO_SETTINGS_MODULE": "tools.bench.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain http on loopback
        "DATABASE_URL": database_url,
        "REDIS_URL": broker_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": llm_base_url,
        "LLM_API_KEY": "bench-key",
        "API_THROTTLE_USER": UNREACHABLE_RATE,
        "API_THROTTLE_TURNS": UNREACHABLE_RATE,
        "LOG_LEVEL": "WARNING",
    }


def gunicorn_settings(overrides: dict[str, str] | None = None) -> dict[str, object]:
    """The production gunicorn settings the bench serves with (and reports), under ``overrides`` of
    the environment if given."""
    saved = {name: os.environ.get(name) for name in overrides or {}}
    os.environ.update(overrides or {})
    try:
        conf = runpy.run_path(str(GUNICORN_PRODUCTION))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    names = ("worker_class", "workers", "threads", "worker_connections", "timeout")
    settings = {name: conf[name] for name in names if name in conf}
    if settings.get("worker_class") == "gevent":
        settings["accept_batch"] = conf["_accept_batch"]
    return settings


class Gunicorn:
    """``gunicorn pantheon.wsgi`` with the production settings and the bench's URLs, on a free
    port. Ready once every worker has loaded the app (``gunicorn_conf.py`` marks each), so no
    request of the bench ever waits on a booting worker, and the first one is a cold request."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.workers = int(gunicorn_settings().get("workers", 1))
        self.process: subprocess.Popen | None = None
        self._ready_dir = tempfile.TemporaryDirectory(prefix="pantheon-bench-")

    def start(self, *, timeout: float = 60.0) -> float:
        """Start and wait until every worker is ready; returns the seconds that took."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self.process = spawn(
            [
                *(sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_BENCH)),
                *("pantheon.wsgi", "--bind", f"127.0.0.1:{self.port}"),
            ],
            log=self.log_path,
            env={**os.environ, **self.env, "BENCH_READY_DIR": self._ready_dir.name},
        )
        while self.workers_ready() < self.workers:
            if self.process.poll() is not None or time.perf_counter() - started > timeout:
                self.stop()
                raise BenchError(f"gunicorn did not start; see {self.log_path}")
            time.sleep(0.05)
        return time.perf_counter() - started

    def workers_ready(self) -> int:
        return len(os.listdir(self._ready_dir.name))

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT, gunicorn's quick shutdown: nothing of the bench is in flight.
            stop(self.process, timeout=15, sig=signal.SIGINT)
        self._ready_dir.cleanup()
