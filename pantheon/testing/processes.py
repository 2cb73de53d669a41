"""Real servers started by tests, on loopback ports of their own: gunicorn serving Pantheon and a
throwaway redis-server. Each stops what it started, and every wait is bounded."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


def _stop(process: subprocess.Popen, *, timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextmanager
def gunicorn(*, env: dict[str, str], log: Path, workers: int = 2, threads: int = 4) -> Iterator[Server]:
    """Pantheon under gunicorn (gthread, the repository's gunicorn.conf.py), answering health."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "pantheon.wsgi",
                "--config",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(threads),
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
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
        _stop(process)


@contextmanager
def redis_server(*, log: Path) -> Iterator[Server]:
    """A redis-server of the test's own (no persistence) on a free port."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=out,
            stderr=subprocess.STDOUT,
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
        _stop(process)


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
