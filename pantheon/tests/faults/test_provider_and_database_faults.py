"""Faults of the provider and the database: a provider that hangs is cut at the deadline (the turn is
partial or failed, recorded, and the session free again); database connections killed between
requests (``pg_terminate_backend``) are replaced and the next requests succeed."""

import pytest
from django.db import connection

from orchestration.testing.fake_server import Step
from pantheon.testing.books import assert_nothing_lost
from pantheon.testing.processes import app_env, gunicorn, http
from sessions_app.models import Turn
from usage.services.tokens import api_token_issue

pytestmark = pytest.mark.faults

WRITER, CRITIC = "deepseek/deepseek-chat", "openai/gpt-4o-mini"


@pytest.mark.django_db
def test_a_hung_provider_is_cut_at_the_deadline(session, fake_llm, settings, turn_post):
    settings.LLM_TIMEOUT_SECONDS = 1.0
    fake_llm.enqueue(Step(model=WRITER, delay=8))  # hangs far past the deadline
    partial = turn_post("@writer @critic go")
    assert partial.status_code == 201
    assert partial.json()["status"] == "partial"
    assert partial.json()["agent_errors"] == [{"agent_key": "writer", "code": "provider_timeout"}]

    fake_llm.enqueue(Step(model=WRITER, delay=8), Step(model=CRITIC, delay=8))
    failed = turn_post("@writer @critic again")
    assert failed.status_code == 502 and failed.json()["code"] == "llm_unavailable"

    fake_llm.reset()
    assert turn_post("@writer @critic once more").status_code == 201  # session free
    assert list(
        Turn.objects.filter(session=session).order_by("turn_index").values_list("status", flat=True)
    ) == [
        "partial",
        "failed",
        "completed",
    ]
    assert_nothing_lost()


def test_database_connections_killed_between_requests(database_url, session, user, tmp_path):
    """gunicorn keeps its connections (CONN_MAX_AGE) and checks them before reuse (health checks)."""
    token = api_token_issue(user=user)[1]
    auth = {"Authorization": f"Bearer {token}"}
    turns = f"/api/v1/sessions/{session.pk}/turns"
    with gunicorn(env=app_env(DATABASE_URL=database_url), log=tmp_path / "gunicorn.log", workers=1) as server:
        for i in range(3):
            assert (
                http("POST", server.url + turns, {"user_input": f"@writer {i}", "mode": "manual"}, auth)[0]
                == 201
            )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (killed,) = cursor.fetchone()
        assert killed >= 1  # the server's kept connections
        assert http("GET", f"{server.url}/api/v1/health")[0] == 200
        for i in range(3, 6):
            assert (
                http("POST", server.url + turns, {"user_input": f"@writer {i}", "mode": "manual"}, auth)[0]
                == 201
            )
        status, listed, _ = http("GET", server.url + turns, headers=auth)

    assert status == 200 and listed["count"] == 6
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
    assert_nothing_lost()
