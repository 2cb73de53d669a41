"""Under gunicorn with two workers: /metrics sums every worker's counters (multiprocess mode), and
the web process writes JSON lines (production's LOG_FORMAT), gunicorn's access lines included."""

import json
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pantheon.testing.processes import app_env, gunicorn, http
from usage.services.tokens import api_token_issue

pytestmark = pytest.mark.integration

TOKEN = "scrape-secret"


def test_metrics_add_up_across_gunicorn_workers(database_url, session, user, tmp_path):
    token = api_token_issue(user=user)[1]
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = app_env(
        DATABASE_URL=database_url,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        METRICS_TOKEN=TOKEN,
        LOG_FORMAT="json",
    )
    with gunicorn(env=env, log=tmp_path / "gunicorn.log", workers=2) as server:
        url = f"{server.url}/api/v1/sessions/{session.pk}/turns"
        statuses = []

        def turns(n: int) -> None:
            for i in range(n):
                status, _, _ = http(
                    "POST",
                    url,
                    {"user_input": f"@writer part {i}", "mode": "manual"},
                    {"Authorization": f"Bearer {token}", "X-Request-ID": "gunicorn-test"},
                )
                statuses.append(status)

        clients = [threading.Thread(target=turns, args=(3,)) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        status, exposition, _ = http(
            "GET", f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )

    assert statuses == [201] * 12
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }
    assert (
        samples[("pantheon_turns_total", (("code", "none"), ("mode", "manual"), ("status", "completed")))]
        == 12
    )
    assert samples[("pantheon_turn_duration_seconds_count", (("mode", "manual"),))] == 12
    # Each process writes files of its own, named by host and pid.
    assert len({path.name.split("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}) >= 1

    lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines()]
    turn_lines = [line for line in lines if line.get("event") == "turn"]
    assert len(turn_lines) == 12
    assert {line["request_id"] for line in turn_lines} == {"gunicorn-test"}
    assert any(line["logger"] == "gunicorn.access" for line in lines)
