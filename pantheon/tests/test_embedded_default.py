"""The embedded default as ``make run`` serves it: SQLite, eager Celery, offline provider — in a real
server process, with simultaneous turns on one session (201s or 409s, never a 500)."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    var = tmp_path_factory.mktemp("embedded")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_", "LLM_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="pantheon.settings.base",
        DJANGO_STATIC_ROOT=str(var / "static"),
        PANTHEON_SQLITE_PATH=str(var / "db.sqlite3"),
        OPENROUTER_API_KEY="",
        LOG_LEVEL="ERROR",
        TURNS_IN_FLIGHT_PER_USER="10",  # the simultaneous-turns test is about SQLite, not the cap
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
    seeded = subprocess.run(
        [*manage, "seed_demo"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    facts = dict(line.strip().split(":", 1) for line in seeded.stdout.splitlines() if line.startswith("  "))
    port = _free_port()
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield {"port": port, "token": facts["token"].strip(), "session": facts["session"].strip()}
    server.terminate()
    server.wait(timeout=10)


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


def test_simultaneous_turns_on_sqlite_never_500(embedded_server):
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
