"""Integration: a real Celery worker process, Redis as the broker, PostgreSQL (or the test database)
shared with the web side, and the fake LLM server for both."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from orchestration.testing.fake_server import Step
from pantheon.celery import app
from sessions_app.models import ChatSession, SessionSummary, Turn
from sessions_app.tests.factories import TurnFactory
from usage.models import LlmCallEvent

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the worker shares the test database over the network: PostgreSQL only")
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _drop_broker_pools() -> None:
    """Celery caches its connection and producer pools on first use; after a broker change they must
    be dropped (as Celery itself does after a fork)."""
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def worker(redis_url, fake_llm):
    """A Celery worker subprocess, and this process's Celery app pointed at the same Redis."""
    database_url = _database_url()  # may skip: before anything below is changed
    saved = (app.conf.task_always_eager, app.conf.broker_url)
    _drop_broker_pools()  # producer pools made for another broker earlier in the run
    app.conf.task_always_eager = False
    app.conf.broker_url = redis_url
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pantheon.settings.base",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": "test-key",
        "LLM_MAX_RETRIES": "0",
        "LOG_LEVEL": "INFO",
    }
    log = open(ROOT / "var" / "test-worker.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "pantheon",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        _drop_broker_pools()
        app.conf.task_always_eager, app.conf.broker_url = saved


def _wait_for(predicate, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    log = (ROOT / "var" / "test-worker.log").read_text()[-3000:]
    pytest.fail(f"timed out; worker log tail:\n{log}")


def test_eighth_turn_summary_is_made_by_the_worker(worker, session, turn_post, fake_llm):
    for i in range(1, 9):
        assert turn_post(f"@writer chapter {i}").status_code == 201
    assert Turn.objects.get(session=session, turn_index=8).summary_triggered
    fake_llm.enqueue(
        Step(reply=json.dumps({"summary_text": "Eight chapters drafted by the Writer."})),
        Step(reply=json.dumps({"key_facts": ["Eight chapters exist."]})),
    )

    summary = _wait_for(lambda: SessionSummary.objects.filter(session=session).first())

    assert summary.covers_through_turn_index == 8
    assert summary.summary_text == "Eight chapters drafted by the Writer."
    assert summary.key_facts == ["Eight chapters exist."]
    assert (
        LlmCallEvent.objects.filter(session_id=session.pk, purpose__in=["summary", "extraction"]).count() == 2
    )
    log = (ROOT / "var" / "test-worker.log").read_text()
    assert f"turn=summary:{session.pk}:8" in log  # the worker's lines carry the work's id


def test_due_summary_lost_by_the_broker_is_made_by_the_sweep(worker, session, fake_llm):
    TurnFactory.create_batch(2, session=session)
    ChatSession.objects.filter(pk=session.pk).update(summary_due_through=2)  # due, never enqueued

    from orchestration.tasks import summaries_due_sweep

    summaries_due_sweep.delay()
    summary = _wait_for(lambda: SessionSummary.objects.filter(session=session).first())
    assert summary.covers_through_turn_index == 2
