"""Integration: a real Celery worker process, Redis as the broker, PostgreSQL (or the test database)
shared with the web side, and the fake LLM server for both."""

import json
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from orchestration.testing.fake_server import Step
from pantheon.celery import app
from pantheon.testing.processes import celery_broker_pools_drop, celery_worker, database_url_of
from sessions_app.models import ChatSession, SessionSummary, Turn
from sessions_app.tests.factories import SessionFactory, TurnFactory
from usage.models import LlmCallEvent

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONCURRENCY = 100  # docker-compose.yml's worker: --pool=gevent --concurrency=100
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@contextmanager
def _worker(redis_url, fake_llm, **pool):
    """A Celery worker subprocess, and this process's Celery app pointed at the same Redis."""
    database_url = database_url_of(connection)  # may skip: before anything below is changed
    saved = (app.conf.task_always_eager, app.conf.broker_url)
    celery_broker_pools_drop()  # producer pools made for another broker earlier in the run
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
    try:
        with celery_worker(env=env, log=ROOT / "var" / "test-worker.log", **pool) as process:
            yield process
    finally:
        celery_broker_pools_drop()
        app.conf.task_always_eager, app.conf.broker_url = saved


@pytest.fixture
def worker(redis_url, fake_llm):
    with _worker(redis_url, fake_llm) as process:
        yield process


@pytest.fixture
def gevent_worker(redis_url, fake_llm):
    """The worker as shipped (docker-compose.yml): the gevent pool, many tasks at once."""
    with _worker(redis_url, fake_llm, pool="gevent", concurrency=SHIPPED_CONCURRENCY) as process:
        yield process


def _wait_for(predicate, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    log = (ROOT / "var" / "test-worker.log").read_text()[-3000:]
    pytest.fail(f"timed out; worker log tail:\n{log}")


def test_eighth_turn_summary_is_made_by_the_worker(worker, user, session, turn_post, fake_llm):
    for i in range(1, 9):
        response = turn_post(f"@writer chapter {i}", HTTP_X_REQUEST_ID=f"chapter-{i}")
        assert response.status_code == 201
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
    # The worker's lines carry the work's id, and the ids of the request that asked for it.
    summary_lines = [line for line in log.splitlines() if f"turn=summary:{session.pk}:8" in line]
    assert summary_lines
    assert all(f"request=chapter-8 user={user.pk} session={session.pk} " in line for line in summary_lines)


def test_due_summary_lost_by_the_broker_is_made_by_the_sweep(worker, session, fake_llm):
    TurnFactory.create_batch(2, session=session)
    ChatSession.objects.filter(pk=session.pk).update(summary_due_through=2)  # due, never enqueued

    from orchestration.tasks import summaries_due_sweep

    summaries_due_sweep.delay()
    summary = _wait_for(lambda: SessionSummary.objects.filter(session=session).first())
    assert summary.covers_through_turn_index == 2


def test_summaries_of_a_session_never_overlap_on_a_concurrent_worker(gevent_worker, room, fake_llm):
    """Many summaries of a few sessions asked for at once (twice each, as a redelivery would) on the
    shipped worker pool: summaries of one session run one at a time, each built on the one before,
    and every turn is summarised exactly once."""
    from orchestration.tasks import session_summary_generate

    sessions = [SessionFactory(room=room) for _ in range(4)]
    for number, session in enumerate(sessions):
        for index in range(1, 19):
            TurnFactory(session=session, turn_index=index, user_input=f"s{number} part {index}")
    fake_llm.set_latency(300)  # slow enough that a session's summaries would run side by side
    for through in (3, 6, 9, 12, 15, 18):
        for session in sessions:
            session_summary_generate.delay(str(session.pk), through)
            session_summary_generate.delay(str(session.pk), through)

    # Nothing can be written after a session's summary through its last turn (every later task finds
    # it made), so once each session has that one, its summaries are final.
    _wait_for(
        lambda: (
            SessionSummary.objects.filter(covers_through_turn_index=18, session__in=sessions).count() == 4
        ),
        timeout=120,
    )
    summarised = Counter()
    for request in fake_llm.requests:
        prompt = request.body["messages"][-1]["content"]
        if "New turns:" in prompt:
            summarised.update(re.findall(r"User: (s\d+ part \d+)", prompt.split("New turns:", 1)[1]))
    expected = {f"s{n} part {i}" for n in range(4) for i in range(1, 19)}
    assert set(summarised) == expected  # nothing missing ...
    assert all(count == 1 for count in summarised.values()), summarised.most_common(3)  # ... nor twice
    for session in sessions:
        chain = list(
            SessionSummary.objects.filter(session=session)
            .order_by("covers_through_turn_index")
            .values_list("covers_through_turn_index", flat=True)
        )
        assert chain[-1] == 18
        calls = LlmCallEvent.objects.filter(session_id=session.pk, purpose__in=["summary", "extraction"])
        assert calls.count() == 2 * len(chain)  # each made summary billed once, nothing orphaned
        assert not calls.filter(orphaned=True).exists()
        assert ChatSession.objects.get(pk=session.pk).summary_claim_token is None  # claims given back


def test_the_shipped_worker_holds_sixty_summary_calls_at_once(gevent_worker, room, fake_llm):
    """Sixty sessions' summaries asked for together: all sixty calls reach the provider before any
    answers (one worker process, the gevent pool), then each is written."""
    from orchestration.tasks import session_summary_generate

    sessions = [SessionFactory(room=room) for _ in range(60)]
    for session in sessions:
        TurnFactory.create_batch(2, session=session)
    fake_llm.set_latency(8000)
    for session in sessions:
        session_summary_generate.delay(str(session.pk), 2)

    _wait_for(lambda: len(fake_llm.requests) >= 60, timeout=60)
    assert not SessionSummary.objects.filter(session__in=sessions).exists()  # all sixty still waiting
    fake_llm.set_latency(0)
    fake_llm.answer_waiting()
    _wait_for(lambda: SessionSummary.objects.filter(session__in=sessions).count() == 60, timeout=120)
