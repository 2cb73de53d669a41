"""The usage review in Django admin: filters, totals for the filter, the daily chart, CSV export."""

import csv
import io
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from usage.models import LlmCallEvent
from usage.tests.factories import LlmCallEventFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/admin/usage/llmcallevent/"


@pytest.fixture
def staff_client(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


@pytest.fixture
def events():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    room = uuid.uuid4()
    rows = [
        (alice, "deepseek", "agent_reply", True, "0.001000", "1.0000", room, 0),
        (alice, "qwen", "agent_reply", True, "0.002000", "2.0000", room, 1),
        (alice, "deepseek", "routing", False, "0.000500", "0", room, 1),
        (bob, "deepseek", "agent_reply", True, "0.004000", "4.0000", uuid.uuid4(), 2),
    ]
    created = []
    for user, model, purpose, billable, cost, credits, room_id, days_ago in rows:
        event = LlmCallEventFactory(
            user=user,
            model_alias=model,
            provider_model=model,
            purpose=purpose,
            billable=billable,
            cost_usd=Decimal(cost),
            credits_burned=Decimal(credits),
            input_tokens=100,
            output_tokens=10,
            room_id=room_id,
        )
        LlmCallEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
        created.append(event)
    return {"alice": alice, "bob": bob, "room": room, "events": created}


def test_totals_follow_the_filter(staff_client, events):
    everything = staff_client.get(URL).context["usage_totals"]
    assert everything["events"] == 4 and everything["cost_usd"] == Decimal("0.0075")
    assert everything["billed_cost_usd"] == Decimal("0.007") and everything["credits_burned"] == Decimal("7")

    only_alice = staff_client.get(URL, {"user__id__exact": events["alice"].pk}).context["usage_totals"]
    assert only_alice["events"] == 3 and only_alice["cost_usd"] == Decimal("0.0035")

    billable_deepseek = staff_client.get(URL, {"model_alias": "deepseek", "billable__exact": "1"})
    assert billable_deepseek.context["usage_totals"]["events"] == 2

    by_room = staff_client.get(URL, {"room": str(events["room"]), "purpose": "routing"})
    assert by_room.context["usage_totals"]["events"] == 1


def test_daily_chart_has_a_bar_per_day_and_model(staff_client, events):
    response = staff_client.get(URL)
    chart = response.context["usage_chart"]
    assert len(chart["bars"]) == 4  # (day0, deepseek) (day1, qwen) (day1, deepseek) (day2, deepseek)
    assert {item["model"] for item in chart["legend"]} == {"deepseek", "qwen"}
    assert b"<svg" in response.content and b"Daily cost per model" in response.content


def test_csv_export_is_the_filtered_list(staff_client, events):
    response = staff_client.get(URL + "export.csv", {"model_alias": "qwen"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = rows[0], rows[1:]
    assert "cost_usd" in header and len(body) == 1
    assert body[0][header.index("model_alias")] == "qwen"
    assert Decimal(body[0][header.index("cost_usd")]) == Decimal("0.002")


def test_csv_export_action_exports_the_selection(staff_client, events):
    chosen = [str(events["events"][0].pk), str(events["events"][3].pk)]
    response = staff_client.post(URL, {"action": "export_selected_csv", "_selected_action": chosen})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r[0] for r in rows[1:]) == sorted(chosen)


def test_non_staff_cannot_see_the_review(client, events):
    client.force_login(events["alice"])
    assert client.get(URL).status_code == 302
    assert client.get(URL + "export.csv").status_code == 302


def test_events_are_read_only_in_admin(staff_client, events):
    event = events["events"][0]
    assert staff_client.post(f"{URL}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LlmCallEvent.objects.filter(pk=event.pk).exists()
