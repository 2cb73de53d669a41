"""Who sets budgets and who sees them: GET /api/v1/budgets, users' tighter limits on their own rooms
and keys, the soft-limit warning (turn response, /auth/me, log, metric, signed webhook)."""

import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from openai_compat.services import api_key_create
from pantheon.celery import app as celery_app
from rooms.tests.factories import RoomFactory
from usage.models import Budget, BudgetUsage
from usage.services.budgets import budget_webhook_post, period_starts
from usage.tasks import budget_webhook_send
from usage.tests.factories import UserFactory, balance_set

pytestmark = pytest.mark.django_db


def test_a_user_reads_their_budgets_with_the_periods_figures(api_client, other_client, user, room):
    Budget.objects.create(user=user, period="day", limit_credits=Decimal(50))
    Budget.objects.create(user=user, room_id=room.pk, period="month", limit_credits=Decimal(500))

    listed = api_client.get("/api/v1/budgets").json()

    assert [(b["scope"], b["period"], b["limit_credits"], b["remaining_credits"]) for b in listed] == [
        ("user", "day", "50.0000", "50.0000"),
        ("room", "month", "500.0000", "500.0000"),
    ]
    assert listed[1]["room_id"] == str(room.pk) and listed[0]["resets_at"] > listed[0]["period_start"]
    assert other_client.get("/api/v1/budgets").json() == []


def test_a_user_may_tighten_an_operators_budget_on_their_room_never_loosen_it(api_client, user, room):
    Budget.objects.create(user=user, room_id=room.pk, period="day", limit_credits=Decimal(20))
    body = {"room_id": str(room.pk), "period": "day"}

    looser = api_client.post("/api/v1/budgets", {**body, "limit_credits": "25"}, format="json")
    tighter = api_client.post("/api/v1/budgets", {**body, "limit_credits": "5"}, format="json")

    assert looser.status_code == 400 and looser.json()["code"] == "budget_looser_than_operator"
    assert tighter.status_code == 201 and tighter.json()["set_by"] == "user"
    assert Budget.objects.filter(set_by="user").get().limit_credits == Decimal(5)


def test_a_user_budget_on_a_key_and_the_rules_of_ownership(api_client, user, other_user, room):
    key, _ = api_key_create(user=user, name="UI")
    foreign_room = RoomFactory(owner=other_user)
    operators = Budget.objects.create(user=user, period="day", limit_credits=Decimal(20))

    on_key = api_client.post(
        "/api/v1/budgets", {"api_key_id": key.pk, "period": "week", "limit_credits": "3"}, format="json"
    )
    foreign = api_client.post(
        "/api/v1/budgets",
        {"room_id": str(foreign_room.pk), "period": "day", "limit_credits": "1"},
        format="json",
    )
    neither = api_client.post("/api/v1/budgets", {"period": "day", "limit_credits": "1"}, format="json")

    assert on_key.status_code == 201 and on_key.json()["scope"] == "api_key"
    assert foreign.status_code == 404 and neither.status_code == 400
    assert api_client.delete(f"/api/v1/budgets/{operators.pk}").status_code == 403
    assert api_client.delete(f"/api/v1/budgets/{on_key.json()['id']}").status_code == 204
    assert list(Budget.objects.all()) == [operators]


def test_the_soft_limit_warns_once_per_period_in_the_turn_and_in_me(
    api_client, user, session, turn_post, fake_llm, settings, caplog
):
    settings.BUDGET_SOFT_LIMIT_SHARE = Decimal("0.0001")  # the first turn's spend crosses it
    balance_set(user, Decimal(1000))
    budget = Budget.objects.create(user=user, period="day", limit_credits=Decimal(100))

    first = turn_post("@writer go")
    second = turn_post("@writer again")

    assert first.status_code == 201 and second.status_code == 201
    [warned] = first.json()["budget"]["soft_limit_reached"]
    assert warned["id"] == budget.pk and Decimal(warned["spent_credits"]) > 0
    assert second.json()["budget"] is None  # once per budget and period
    assert BudgetUsage.objects.get(budget=budget).warned_at is not None
    assert [b["id"] for b in api_client.get("/api/v1/auth/me").json()["budget_warnings"]] == [budget.pk]
    assert sum("budget soft limit reached" in r.getMessage() for r in caplog.records) == 1


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, self.headers["X-Pantheon-Signature"]))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        return None


@pytest.fixture
def hook(settings):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received, _Hook.status = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.BUDGET_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.BUDGET_WEBHOOK_SECRET = "s3cret"
    yield _Hook
    server.shutdown()


def test_the_soft_limit_notice_reaches_the_webhook_signed(
    user, session, turn_post, fake_llm, settings, hook, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the task runs here, on commit
    settings.BUDGET_SOFT_LIMIT_SHARE = Decimal("0.0001")
    balance_set(user, Decimal(1000))
    budget = Budget.objects.create(user=user, period="day", limit_credits=Decimal(100))

    with django_capture_on_commit_callbacks(execute=True):
        assert turn_post("@writer go").status_code == 201

    [(body, signature)] = hook.received
    assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    notice = json.loads(body)
    assert notice["event"] == "budget.soft_limit" and notice["budget"]["id"] == budget.pk


def test_a_hook_that_is_down_fails_the_send_so_the_task_retries_it(hook):
    hook.status = 503

    with pytest.raises(Exception, match="503"):
        budget_webhook_post(payload={"event": "budget.soft_limit"})
    assert budget_webhook_send.autoretry_for == (Exception,) and budget_webhook_send.max_retries >= 10
    assert budget_webhook_send.acks_late


def test_an_operator_sets_a_budget_with_the_command_and_sets_it_again_to_change_it(user, room):
    out = StringIO()
    call_command("budget_set", user=user.username, period="week", limit="40", room=str(room.pk), stdout=out)
    call_command("budget_set", user=user.username, period="week", limit="25.5", room=str(room.pk), stdout=out)

    budget = Budget.objects.get()
    assert (budget.room_id, budget.limit_credits, budget.set_by) == (room.pk, Decimal("25.5"), "operator")
    assert "Made budget" in out.getvalue() and "Changed budget" in out.getvalue()
    with pytest.raises(CommandError, match="4 decimal places"):
        call_command("budget_set", user=user.username, period="day", limit="0.00001")
    with pytest.raises(CommandError, match="No user"):
        call_command("budget_set", user="nobody", period="day", limit="1")


def test_the_admin_lists_budgets_with_their_remaining_figure_and_the_review_draws_a_bar_each(
    client, user, room
):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    Budget.objects.create(user=user, room_id=room.pk, period="day", limit_credits=Decimal(10))
    usage = BudgetUsage.objects.create(
        budget=Budget.objects.get(), period_start=period_starts()["day"], spent=Decimal(4), held=Decimal(1)
    )

    listing = client.get("/admin/usage/budget/")
    review = client.get("/admin/usage/llmcallevent/")

    assert listing.status_code == 200 and "5.0000 (resets" in listing.content.decode()
    assert room.name in listing.content.decode()
    bars = review.context["usage_budgets"]
    assert [(b["spent_pct"], b["held_pct"], b["limit"]) for b in bars] == [(40, 10, "10.0000")]
    assert 'class="budget-bar"' in review.content.decode() and usage.pk
