"""Faults of the Celery side: the broker stops while turns run, a worker is killed (SIGKILL) in the
middle of a summary. Turns still commit, and every summary that was due is made exactly once and
billed once (by the sweep, or the redelivered task finding it made)."""

import signal
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Count

from orchestration.selectors import summaries_due
from orchestration.tasks import session_summary_generate, summaries_due_sweep
from pantheon.celery import app
from pantheon.testing.books import assert_nothing_lost
from pantheon.testing.processes import app_env, celery_broker_pools_drop, celery_worker, redis_server
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.models import ChatSession, SessionSummary, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.holds import HoldRequest, credit_hold_place, credit_holds_sweep, summary_hold_expiry

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def broker(tmp_path, settings):
    """A Redis of the test's own as the broker of this process's Celery app (no longer eager)."""
    saved = (app.conf.task_always_eager, app.conf.broker_url)
    with redis_server(log=tmp_path / "broker.log") as server:
        celery_broker_pools_drop()
        app.conf.task_always_eager = False
        app.conf.broker_url = server.url
        settings.CELERY_TASK_ALWAYS_EAGER = False
        try:
            yield server
        finally:
            celery_broker_pools_drop()
            app.conf.task_always_eager, app.conf.broker_url = saved


def _eager_again(settings) -> None:
    celery_broker_pools_drop()
    app.conf.task_always_eager = True
    settings.CELERY_TASK_ALWAYS_EAGER = True


def _session(user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", model_alias="deepseek")
    return SessionFactory(room=room)


def _turns(client, session, count: int) -> list[int]:
    return [
        client.post(
            f"/api/v1/sessions/{session.pk}/turns", {"user_input": f"@writer part {i}", "mode": "manual"}
        ).status_code
        for i in range(count)
    ]


def _assert_each_summary_made_and_billed_once(sessions) -> None:
    made = SessionSummary.objects.filter(session__in=sessions)
    assert made.count() == len(sessions)
    assert not made.values("session", "covers_through_turn_index").annotate(n=Count("id")).filter(n__gt=1)
    for session in sessions:
        calls = LlmCallEvent.objects.filter(
            session_id=session.pk, purpose__in=["summary", "extraction"], abandoned=False
        )
        assert sorted(calls.values_list("purpose", flat=True)) == ["extraction", "summary"]
        assert not calls.filter(orphaned=True).exists()
    debits = CreditLedgerEntry.objects.filter(kind="summary_debit")
    assert debits.count() == len(sessions)


def test_broker_stopped_during_turns(api_client, user, broker, settings):
    before, after = _session(user), _session(user)
    assert _turns(api_client, before, 8) == [201] * 8  # its summary is enqueued, then lost with the broker
    broker.stop()
    assert _turns(api_client, after, 8) == [201] * 8  # its summary cannot be enqueued: logged

    _eager_again(settings)
    assert sorted(summaries_due()) == sorted([(before.pk, 8), (after.pk, 8)])
    assert summaries_due_sweep() == 2
    assert summaries_due_sweep() == 0  # made: nothing due any more

    assert Turn.objects.count() == 16
    _assert_each_summary_made_and_billed_once([before, after])
    assert_nothing_lost()


def test_worker_killed_during_a_summary(api_client, user, broker, database_url, fake_llm, settings, tmp_path):
    session = _session(user)
    assert _turns(api_client, session, 2) == [201, 201]
    ChatSession.objects.filter(pk=session.pk).update(summary_due_through=2)
    hold = credit_hold_place(
        hold=HoldRequest(
            user_id=user.pk,
            kind=CreditHold.Kind.SUMMARY,
            amount=Decimal("3"),
            cost_usd=Decimal("0.003"),
            model_alias="deepseek",
            room_id=session.room_id,
            session_id=session.pk,
            covers_through_turn_index=2,
            expires_at=summary_hold_expiry(),
        )
    )
    fake_llm.reset()
    fake_llm.set_latency(20_000)  # the summary call hangs until the worker is killed
    env = app_env(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker.url,
        LLM_PROVIDER="openai",
        LLM_BASE_URL=fake_llm.base_url,
        LLM_API_KEY="test-key",
        LLM_MAX_RETRIES="0",
        LLM_TIMEOUT_SECONDS="30",
    )
    with celery_worker(env=env, log=tmp_path / "worker.log") as worker:
        session_summary_generate.delay(str(session.pk), 2)
        deadline = time.monotonic() + 60
        while not fake_llm.requests and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        assert fake_llm.requests, (tmp_path / "worker.log").read_text()[-3000:]
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=20)
    fake_llm.set_latency(0)

    assert not SessionSummary.objects.filter(session=session).exists()  # the summary's write never ran
    # The dead worker's claim keeps the session's summaries waiting until it expires; its hold expires
    # with it, and the holds sweep reports the cut call as abandoned at the hold's worst case.
    hold.refresh_from_db()
    assert hold.calls_started_at is not None
    claim_expiry = ChatSession.objects.get(pk=session.pk).summary_claim_expires_at
    assert claim_expiry == hold.expires_at
    credit_holds_sweep(now=claim_expiry + timedelta(seconds=1))
    abandoned = LlmCallEvent.objects.get(session_id=session.pk, abandoned=True)
    assert (abandoned.purpose, abandoned.error_code, abandoned.cost_usd) == (
        "summary",
        "abandoned",
        hold.cost_usd,
    )
    assert not abandoned.billable
    ChatSession.objects.filter(pk=session.pk).update(
        summary_claim_expires_at=claim_expiry - timedelta(hours=1)
    )
    _eager_again(settings)
    assert summaries_due() == [(session.pk, 2)]
    assert summaries_due_sweep() == 1  # the sweep makes it
    session_summary_generate.delay(str(session.pk), 2)  # as the redelivered message would: made already

    _assert_each_summary_made_and_billed_once([session])
    assert_nothing_lost()
