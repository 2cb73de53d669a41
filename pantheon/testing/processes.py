"""Real servers started by tests, on loopback ports of their own: gunicorn serving Pantheon and a
throwaway redis-server. Each stops what it started, and every wait is bounded."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30):
    """One request; (status, parsed JSON body or text, headers). HTTP errors are answers, not raises."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback servers the test started)
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, answer_headers = exc.code, exc.read(), exc.headers
    text = raw.decode()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = text
    return status, payload, answer_headers


def _wait_until(predicate, *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready within {timeout}s\n{tail}")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        stop(self.process)


if sys.platform.startswith("linux"):
    import ctypes

    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # resolved here: the child only calls it
else:  # pragma: no cover
    _prctl = None


def die_with_parent() -> None:
    """A `preexec_fn` for servers a test or a bench starts: on Linux the child is sent SIGTERM when
    the process that started it dies, so a killed run leaves no gunicorn or redis behind."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def spawn(args: list[str], *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``args`` run from the repository's root, their output in ``log``, dying with this process."""
    with open(log, "w") as out:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )


def stop(process: subprocess.Popen, *, timeout: float = 20, sig: int = signal.SIGTERM) -> None:
    """Send ``sig``, wait up to ``timeout`` seconds, then kill."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextmanager
def gunicorn(
    *, env: dict[str, str], log: Path, workers: int = 2, threads: int = 4, worker_class: str | None = None
) -> Iterator[Server]:
    """Pantheon under gunicorn (the repository's gunicorn.conf.py: the shipped worker class, gevent,
    unless ``worker_class`` says otherwise; ``threads`` only for gthread), answering health."""
    port = free_port()
    process = spawn(
        [
            *(sys.executable, "-m", "gunicorn", "pantheon.wsgi", "--config", str(ROOT / "gunicorn.conf.py")),
            *("--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60"),
            *(("--worker-class", worker_class) if worker_class else ()),
            *(("--threads", str(threads)) if worker_class == "gthread" else ()),
        ],
        log=log,
        env=env,
    )
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return http("GET", f"{server.url}/api/v1/health", timeout=5)[0] in (200, 503)
            except OSError:
                return False

        _wait_until(healthy, timeout=60, what="gunicorn", log=log)
        yield server
    finally:
        stop(process)


@contextmanager
def redis_server(*, log: Path) -> Iterator[Server]:
    """A redis-server of the test's own (no persistence) on a free port."""
    port = free_port()
    process = spawn(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log=log,
    )
    server = Server(url=f"redis://127.0.0.1:{port}/0", process=process, log=log)
    try:

        def answering() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        _wait_until(answering, timeout=20, what="redis-server", log=log)
        yield server
    finally:
        stop(process)


def app_env(**overrides: str) -> dict[str, str]:
    """The environment of a Pantheon process started by a test: the embedded default's settings
    (offline provider, eager Celery) unless overridden; none of the test run's Redis or broker."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "pantheon.settings.base",
            "LLM_PROVIDER": "offline",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(overrides)
    return env


@contextmanager
def celery_worker(
    *, env: dict[str, str], log: Path, pool: str = "solo", concurrency: int = 1
) -> Iterator[subprocess.Popen]:
    """A Celery worker process (by default the solo pool: the task runs in the process a test may
    kill; ``pool="gevent"`` with a ``concurrency`` runs many at once, as the shipped worker does)."""
    process = spawn(
        [
            *(sys.executable, "-m", "celery", "-A", "pantheon", "worker", f"--pool={pool}"),
            f"--concurrency={concurrency}",
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"),
        ],
        log=log,
        env=env,
    )
    try:
        yield process
    finally:
        stop(process)


def celery_broker_pools_drop() -> None:
    """Celery caches its connection and producer pools on first use; after a broker change they must
    be dropped (as Celery itself does after a fork)."""
    from pantheon.celery import app

    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def database_url_of(connection) -> str:
    """The URL of the database behind a Django connection, for processes a test starts (they see what
    the test committed). PostgreSQL only: the test is skipped on the laptop's SQLite fallback."""
    import pytest

    s = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("processes share the test database over the network: PostgreSQL only")
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run every call in a thread of its own, all released at once; their results, in order."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        start.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
