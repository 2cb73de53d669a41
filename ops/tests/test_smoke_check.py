"""smoke_check: the staging run against a live server, pass/fail per step, one reusable smoke
account, and nothing left behind but the usage records."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from rooms.models import Room
from rooms.tests.factories import RoomFactory
from sessions_app.models import ChatSession
from usage.models import LlmCallEvent
from usage.tests.factories import UserFactory

PASSWORD = "smoke-passphrase-for-tests"
STEPS = (
    "health",
    "auth",
    "leftovers",
    "room and agents",
    "session",
    "turn: manual",
    "turn: roundtable",
    "turn: orchestrator",
    "summary trigger",
    "usage",
    "cleanup",
)


def smoke(live_server, *args) -> str:
    out = StringIO()
    call_command("smoke_check", "--base-url", live_server.url, *args, stdout=out)
    return out.getvalue()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_smoke_check_passes_against_a_live_server(live_server):
    report = smoke(live_server, "--password", PASSWORD, "--summary-wait", "10")
    for step in STEPS:
        assert f"PASS {step}" in report, report
        assert report.index(f"…    {step}") < report.index(f"PASS {step}")  # said before it runs
    assert "summary through turn 8 present" in report and "(smoke account created)" in report
    assert not Room.objects.live().exists() and not ChatSession.objects.live().exists()
    assert LlmCallEvent.objects.exists()  # what the calls cost stays on record


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_smoke_check_reuses_one_smoke_account(live_server):
    smoke(live_server, "--password", PASSWORD, "--username", "staging-smoke")
    events = LlmCallEvent.objects.count()
    second = smoke(live_server, "--password", PASSWORD, "--username", "staging-smoke")
    assert "(smoke account created)" not in second and "as staging-smoke" in second
    assert get_user_model().objects.filter(username__startswith="staging-smoke").count() == 1
    assert get_user_model().objects.count() == 1
    assert LlmCallEvent.objects.count() > events  # usage of both runs kept
    assert not Room.objects.live().exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_smoke_check_removes_rooms_an_interrupted_run_left(live_server):
    account = UserFactory(username="smoke-check", password=PASSWORD)
    RoomFactory(owner=account, name="Smoke check")
    kept = RoomFactory(owner=account, name="Smoke check notes")
    report = smoke(live_server, "--password", PASSWORD)
    assert "PASS leftovers" in report and "removed 1 room(s) left by an earlier run" in report
    assert list(Room.objects.live()) == [kept]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_smoke_check_fails_loudly(live_server, settings):
    settings.REGISTRATION_OPEN = False
    out = StringIO()
    with pytest.raises(CommandError, match="auth"):
        call_command("smoke_check", "--base-url", live_server.url, "--password", PASSWORD, stdout=out)
    assert "FAIL auth" in out.getvalue() and "PASS health" in out.getvalue()
    assert "Registration is closed" in out.getvalue()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_wrong_smoke_password_says_so(live_server):
    UserFactory(username="smoke-check", password="the-real-one-123")
    out = StringIO()
    with pytest.raises(CommandError, match="auth"):
        call_command("smoke_check", "--base-url", live_server.url, "--password", PASSWORD, stdout=out)
    assert "cannot sign in as smoke-check and cannot register it" in out.getvalue()


def test_smoke_check_needs_a_token_or_a_password(monkeypatch):
    monkeypatch.delenv("SMOKE_CHECK_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="--password"):
        call_command("smoke_check", "--base-url", "http://127.0.0.1:9", "--password", "", stdout=StringIO())


def test_smoke_check_reports_an_unreachable_server():
    out = StringIO()
    with pytest.raises(CommandError, match="health"):
        call_command(
            "smoke_check", "--base-url", "http://127.0.0.1:9", "--token", "t", "--timeout", "1", stdout=out
        )
    assert "FAIL health" in out.getvalue() and "127.0.0.1:9 unreachable (" in out.getvalue()
