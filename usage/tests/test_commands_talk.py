"""Commands on long work say what they are doing: a line before slow calls, a running count, input
checked up front, a clear line when a cap left work, errors that name the host and the reason."""

import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from usage.models import LlmCallEvent
from usage.provider import NO_PROVIDER
from usage.services.reconciliation import usage_reconcile
from usage.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def pending_events(n: int) -> None:
    user = UserFactory()
    LlmCallEvent.objects.bulk_create(
        LlmCallEvent(
            user=user,
            purpose="agent_reply",
            model_alias="deepseek",
            provider_model="deepseek/deepseek-chat",
            provider_generation_id=f"gen-unknown-{i}",
            cost_usd=Decimal("0.001"),
        )
        for i in range(n)
    )


@pytest.mark.parametrize("hours", ["-5", "0", "two"])
def test_reconcile_usage_refuses_hours_that_are_not_positive(hours):
    with pytest.raises(CommandError, match="--hours: must be a whole number above 0"):
        call_command("reconcile_usage", "--hours", hours, stdout=StringIO())


def test_reconcile_usage_names_the_provider_and_counts_as_it_goes(fake_llm):
    pending_events(5)
    out = StringIO()
    call_command("reconcile_usage", stdout=out)
    text = out.getvalue()
    host = fake_llm.base_url.split("://", 1)[1].split("/", 1)[0]
    assert f"Asking {host} for the final cost of each call" in text
    assert "generations checked: 5/5" in text  # not a terminal: a plain line, not a bar
    assert text.index("Asking") < text.index("generations checked")


def test_reconcile_usage_says_when_its_cap_left_work_pending(fake_llm):
    pending_events(5)
    out = StringIO()
    call_command("reconcile_usage", "--limit", "2", stdout=out)
    assert "The --limit of 2 lookups was reached: 3 event(s) are still pending" in out.getvalue()
    assert LlmCallEvent.objects.filter(reconciliation="pending").count() == 3
    out = StringIO()
    call_command("reconcile_usage", "--limit", "10", stdout=out)
    assert "still pending" not in out.getvalue()
    assert not LlmCallEvent.objects.filter(reconciliation="pending").exists()


def test_reconcile_reports_progress_before_each_lookup_and_at_the_end(fake_llm):
    pending_events(3)
    calls = []
    report = usage_reconcile(progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert (report.checked, report.still_pending, report.capped) == (3, 0, False)


def test_an_unreachable_provider_is_named_with_the_reason(settings):
    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY = (
        "openai",
        "http://127.0.0.1:9/v1",
        "k",
    )
    with pytest.raises(CommandError) as failed:
        call_command("catalog_sync", stdout=StringIO())
    message = str(failed.value)
    assert "GET 127.0.0.1:9/v1/models" in message and "refused" in message.lower()
    assert "URLError" not in message


@pytest.fixture
def failing_provider(settings):
    """A provider API that answers every GET with 503, on 127.0.0.1."""

    class Unavailable(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503, "Service Unavailable")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_port}"
    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY = (
        "openai",
        f"http://{host}/api/v1",
        "k",
    )
    yield host
    server.shutdown()
    server.server_close()


def test_provider_http_errors_name_host_status_and_reason(failing_provider):
    with pytest.raises(
        CommandError, match=rf"GET {failing_provider}/api/v1/models: HTTP 503 Service Unavailable"
    ):
        call_command("catalog_sync", stdout=StringIO())
    pending_events(1)
    out = StringIO()
    call_command("reconcile_usage", stdout=out)
    assert "1 event(s) are still pending: the provider did not answer" in out.getvalue()


def test_without_a_provider_both_provider_commands_exit_1_with_the_same_message(settings):
    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.OPENROUTER_API_KEY = (
        "openai",
        "",
        "",
        "",
    )
    pending_events(2)
    failures = {}
    out = StringIO()
    for command in ("catalog_sync", "reconcile_usage"):
        with pytest.raises(CommandError) as failed:
            call_command(command, stdout=out)
        failures[command] = (failed.value.returncode, str(failed.value))
    assert failures["catalog_sync"] == failures["reconcile_usage"] == (1, NO_PROVIDER)
    text = out.getvalue()
    assert "nothing can be looked up, only the rollups rebuilt" in text and "rollup_rows" in text
    assert "the provider did not answer" not in text  # no provider was asked


def test_log_lines_follow_the_reconciliation_table(failing_provider):
    pending_events(2)
    out = StringIO()
    handler = logging.StreamHandler(out)  # the log and the report on one screen
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        call_command("reconcile_usage", stdout=out)
    finally:
        root.removeHandler(handler)
    lines = out.getvalue().splitlines()
    table = [n for n, line in enumerate(lines) if line.startswith("  ")]
    logged = [n for n, line in enumerate(lines) if "reconciliation: provider lookup failed" in line]
    assert table and logged and min(logged) > max(table)  # the table is whole, the log line follows
    assert lines.count("  generations checked: 2/2") <= 1
