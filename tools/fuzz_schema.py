"""Schema fuzzing: schemathesis against the live OpenAPI schema of a running Pantheon, authenticated,
every operation, checking that no request gets a server error.

Serves the app with gunicorn on PostgreSQL (a database of its own, made afresh) with the offline
provider and in-process Celery, registers a user and makes a room with agents, sessions and a turn
through the API, then runs schemathesis with ``tools/fuzz_hooks.py``, which gives most generated
requests those real ids (schemathesis cannot guess a UUID that exists) and the rest whatever it
generated. Exits non-zero on any 5xx, printing the server's tracebacks.

    python -m tools.fuzz_schema [--examples 100] [--seconds 420] [--seed 1]

``FUZZ_DATABASE_URL`` names the database (default: DATABASE_URL's, its name + ``_fuzz``);
``FUZZ_EXTRA_ARGS`` adds schemathesis options (e.g. ``--include-path-regex agents`` to reproduce).
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from pantheon.testing.processes import free_port, spawn, stop

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
# Environment that would point the served app elsewhere than the offline provider and this database.
SCRUBBED = ("OPENROUTER_API_KEY", "LLM_BASE_URL", "LLM_API_KEY", "CELERY_BROKER_URL", "REDIS_URL")


def database_url_default() -> str:
    """DATABASE_URL's server, its database name + ``_fuzz`` (the run drops and creates it)."""
    return (os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/pantheon") + "_fuzz"


def database_recreate(url: str) -> None:
    """Drop and create the fuzzing database: every run starts from the migrations alone."""
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    connect = {"host": cfg["HOST"], "port": cfg["PORT"] or 5432, "user": cfg["USER"], "dbname": "postgres"}
    with psycopg.connect(**connect, password=cfg["PASSWORD"] or None, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{cfg["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


class Api:
    """Just enough of a client to seed the fuzzing user's objects."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + API + path, data, headers, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our own http URL)
            return json.loads(response.read() or b"{}")

    def wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.call("GET", "/health")
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def seed(api: Api) -> dict:
    """A user with a room of two agents and a session with a turn (the ids the fuzzing reuses), plus
    a spare room, agent and session for the DELETE operations to remove."""
    user = api.call("POST", "/auth/register", {"username": "fuzzer", "password": secrets.token_urlsafe(16)})
    api.token = user["token"]
    room = api.call("POST", "/rooms", {"name": "Fuzzing room"})["id"]
    for key, model in (("writer", "deepseek"), ("critic", "qwen"), ("spare", "qwen")):
        api.call(
            "POST", f"/rooms/{room}/agents", {"agent_key": key, "name": key.title(), "model_alias": model}
        )
    session = api.call("POST", f"/rooms/{room}/sessions", {"title": "Fuzzing"})["id"]
    api.call("POST", f"/sessions/{session}/turns", {"user_input": "@writer @critic hello", "mode": "manual"})
    return {
        "token": api.token,
        "room_id": room,
        "agent_key": "writer",
        "session_id": session,
        "spare_room_id": api.call("POST", "/rooms", {"name": "Spare room"})["id"],
        "spare_agent_key": "spare",
        "spare_session_id": api.call("POST", f"/rooms/{room}/sessions", {"title": "Spare"})["id"],
    }


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "pantheon.settings.base",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": database_url,
        "LLM_PROVIDER": "offline",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        # Rate limits would only turn generated requests into 429s before they reach any code.
        **{f"API_THROTTLE_{scope}": "1000000/min" for scope in ("ANON", "USER", "TURNS", "AUTH", "REGISTER")},
        # ... and so would the lockout of failed logins (generated credentials all fail).
        "LOGIN_FAILURES_PER_USERNAME": "1000000",
        "LOGIN_FAILURES_PER_ADDRESS": "1000000",
        "LOG_LEVEL": "WARNING",
    }


def schemathesis_command(base_url: str, ids: dict, args: argparse.Namespace) -> list[str]:
    return [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{base_url}/api/schema/",
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {ids['token']}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(args.examples),
        "--seed",
        str(args.seed),
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--no-color",
        *[arg for path in LEFT_TO_THE_SUITE for arg in ("--exclude-path", path)],
        *os.environ.get("FUZZ_EXTRA_ARGS", "").split(),
    ]


# Operations that revoke the fuzzer's own token: called by the fuzzer, every later request would be a
# 401. Their tests (pantheon/tests/attacks/test_tokens.py) cover them instead.
LEFT_TO_THE_SUITE = ("/api/v1/auth/logout", "/api/v1/auth/logout-all")


def operations_listed(base_url: str) -> list[str]:
    url = f"{base_url}/api/schema/?format=json"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (our own http URL)
        schema = json.loads(response.read())
    methods = {"get", "post", "put", "patch", "delete"}
    return [
        f"{m.upper()} {path}"
        for path, ops in schema["paths"].items()
        for m in ops
        if m in methods and path not in LEFT_TO_THE_SUITE
    ]


def report(operations: list[str], statuses: dict[str, dict[str, int]]) -> list[str]:
    """Print each operation's responses by status; return the problems (server errors, untested)."""
    problems = []
    print(f"\n{'requests':>8}  operation  (responses by status)")
    for operation in operations:
        counts = statuses.get(operation, {})
        print(f"{sum(counts.values()):>8}  {operation}  {dict(sorted(counts.items()))}")
        if not counts:
            problems.append(f"{operation}: never called")
        if any(status.startswith("5") for status in counts):
            problems.append(f"{operation}: server error")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="at most this many cases per operation")
    parser.add_argument("--seconds", type=int, default=420, help="the whole run's time limit")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()

    database_url = os.environ.get("FUZZ_DATABASE_URL") or database_url_default()
    database_recreate(database_url)
    env = server_env(database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="pantheon-fuzz-"))
    log, stats_file, ids_file = workdir / "server.log", workdir / "statuses.json", workdir / "ids.json"
    gunicorn = [sys.executable, "-m", "gunicorn", "pantheon.wsgi", "-b", f"127.0.0.1:{port}"]
    server = spawn(
        [*gunicorn, "-w", "2", "--threads", "4", "--timeout", "120", "--log-level", "warning"],
        log=log,
        env=env,
    )
    try:
        api = Api(base_url)
        api.wait_healthy(seconds=30)
        ids = seed(api)
        ids_file.write_text(json.dumps(ids))
        operations = operations_listed(base_url)
        fuzz_env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": str(ROOT / "tools" / "fuzz_hooks.py"),
            "FUZZ_IDS_FILE": str(ids_file),
            "FUZZ_STATS_FILE": str(stats_file),
            "FUZZ_SEED": str(args.seed),
        }
        command = schemathesis_command(base_url, ids, args)
        remaining = args.seconds - (time.monotonic() - started)
        try:
            run = subprocess.run(command, cwd=workdir, env=fuzz_env, timeout=remaining)
        except subprocess.TimeoutExpired:
            print(f"\nFUZZ FAILED: not finished within {args.seconds}s", file=sys.stderr)
            return 1
    finally:
        stop(server, timeout=30)

    statuses = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    problems = report(operations, statuses)
    if run.returncode != 0 or problems:
        print(f"\nFUZZ FAILED (schemathesis exit {run.returncode}): {problems}", file=sys.stderr)
        print(f"The server's log:\n{log.read_text(errors='replace')[-30_000:]}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"fuzzing: {len(operations)} operations, no server error ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
