"""smoke_check: the staging run against a live server, pass/fail per step."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rooms.models import Room


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_smoke_check_passes_against_a_live_server(live_server):
    out = StringIO()
    call_command("smoke_check", "--base-url", live_server.url, "--summary-wait", "10", stdout=out)
    report = out.getvalue()
    for step in (
        "health",
        "auth",
        "room and agents",
        "session",
        "turn: manual",
        "turn: roundtable",
        "turn: orchestrator",
        "summary trigger",
        "usage",
        "cleanup",
    ):
        assert f"PASS {step}" in report, report
    assert "summary through turn 8 present" in report
    assert not Room.objects.live().exists()  # cleaned up


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_smoke_check_fails_loudly(live_server, settings):
    settings.REGISTRATION_OPEN = False
    out = StringIO()
    with pytest.raises(CommandError, match="auth"):
        call_command("smoke_check", "--base-url", live_server.url, stdout=out)
    assert "FAIL auth" in out.getvalue() and "PASS health" in out.getvalue()


def test_smoke_check_reports_an_unreachable_server():
    with pytest.raises(CommandError, match="health"):
        call_command("smoke_check", "--base-url", "http://127.0.0.1:9", "--timeout", "1", stdout=StringIO())
