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


def test_daily_chart_has_every_calendar_day_of_the_filter_empty_ones_included(staff_client, events):
    LlmCallEvent.objects.filter(pk=events["events"][3].pk).update(
        created_at=timezone.now() - timedelta(days=5)
    )
    response = staff_client.get(URL)
    chart = response.context["usage_chart"]
    today = timezone.localdate()
    assert chart["days"] == [(today - timedelta(days=n)).isoformat() for n in range(5, -1, -1)]
    values = {s["model"]: [Decimal(v) for v in s["values"]] for s in chart["series"]}
    # days 5 (bob) and 0, 1 (alice) have usage; days 4, 3, 2 are shown empty, not dropped
    assert values["deepseek"] == [Decimal("0.004"), 0, 0, 0, Decimal("0.0005"), Decimal("0.001")]
    assert values["qwen"] == [0, 0, 0, 0, Decimal("0.002"), 0]
    assert [s["model"] for s in chart["series"]] == ["deepseek", "qwen"]  # biggest first
    assert b'id="cost-chart-data"' in response.content and b"usage/cost-chart.js" in response.content


def test_daily_chart_spans_the_typed_date_range_even_where_nothing_was_spent(staff_client, events):
    today = timezone.localdate()
    start = today - timedelta(days=9)
    response = staff_client.get(URL, {"created_from": start.isoformat(), "created_to": today.isoformat()})
    assert len(response.context["usage_chart"]["days"]) == 10
    assert response.context["usage_chart"]["days"][0] == start.isoformat()


def test_date_range_filter_keeps_whole_days_from_and_to(staff_client, events):
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    one_day = staff_client.get(URL, {"created_from": day, "created_to": day}).context["usage_totals"]
    assert one_day["events"] == 2 and one_day["cost_usd"] == Decimal("0.0025")
    since = staff_client.get(URL, {"created_from": day}).context["usage_totals"]
    assert since["events"] == 3


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_day_that_is_not_a_date_is_named_and_left_out(staff_client, events):
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = staff_client.get(URL, {"created_from": "yesterday", "created_to": day})
    assert response.status_code == 200
    assert page_messages(response) == [
        "“yesterday” is not a date (YYYY-MM-DD): the list is not limited by its “from” day."
    ]
    assert response.context["usage_totals"]["events"] == 3  # the valid "to" day applies: today is out
    assert "is not a date" in response.content.decode()


def test_a_reversed_date_range_is_named_and_read_the_right_way_round(staff_client, events):
    today = timezone.localdate()
    start, end = today - timedelta(days=1), today
    response = staff_client.get(URL, {"created_from": end.isoformat(), "created_to": start.isoformat()})
    assert page_messages(response) == [
        f"The range ends before it starts ({end} to {start}): showing {start} to {end}."
    ]
    assert response.context["usage_totals"]["events"] == 3  # not zero


def test_a_filter_django_could_not_apply_is_named(staff_client, events):
    response = staff_client.get(URL, {"e": "1"})
    assert "A filter in the address was not understood" in " ".join(page_messages(response))


def test_spend_is_grouped_by_user_room_and_model_biggest_first(staff_client, events):
    groups = {g["title"]: g for g in staff_client.get(URL).context["usage_groups"]}
    users = groups["user"]["rows"]
    assert [r["label"] for r in users] == ["bob", "alice"]
    assert users[0]["cost"] == "0.004000" and users[0]["share"] == "53%"
    assert users[1]["query_string"] == f"?user__id__exact={events['alice'].pk}"
    assert [r["label"] for r in groups["model"]["rows"]] == ["deepseek", "qwen"]
    assert groups["model"]["rows"][0]["cost"] == "0.005500"
    assert len(groups["room"]["rows"]) == 2  # rooms no app knows any more: marked removed
    assert all(r["label"].endswith("(removed)") for r in groups["room"]["rows"])


def test_spend_groups_follow_the_filter(staff_client, events):
    response = staff_client.get(URL, {"model_alias": "qwen"})
    groups = {g["title"]: g for g in response.context["usage_groups"]}
    assert [r["label"] for r in groups["user"]["rows"]] == ["alice"]
    assert (
        groups["user"]["rows"][0]["query_string"] == f"?model_alias=qwen&user__id__exact={events['alice'].pk}"
    )


def test_costs_read_as_people_write_them_never_as_exponents(staff_client, events):
    failed = events["events"][0]
    LlmCallEvent.objects.filter(pk=failed.pk).update(
        cost_usd=Decimal("0E-12"), status=LlmCallEvent.Status.FAILED, error_code="provider_timeout"
    )
    page = staff_client.get(URL).content.decode()
    assert "0E-12" not in page and "E-" not in page
    assert "failed: provider_timeout" in page
    assert '<td class="field-cost">0.000000</td>' in page
    assert 'data-total="cost_usd" data-value="0.006500000000">0.006500<' in page


def test_csv_export_is_the_filtered_list(staff_client, events):
    response = staff_client.get(URL + "export.csv", {"model_alias": "qwen"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = rows[0], rows[1:]
    assert "cost_usd" in header and len(body) == 1
    assert body[0][header.index("model_alias")] == "qwen"
    assert Decimal(body[0][header.index("cost_usd")]) == Decimal("0.002")
    assert body[0][header.index("username")] == "alice"
    assert body[0][header.index("room_name")].endswith("(removed)")


def test_the_csv_has_the_billed_usd_the_page_shows_and_the_page_explains_the_difference(staff_client, events):
    page = staff_client.get(URL)
    response = staff_client.get(URL + "export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    billed = sum((Decimal(r["billed_cost_usd"]) for r in rows), Decimal(0))
    assert billed == page.context["usage_totals"]["billed_cost_usd"] == Decimal("0.007")
    assert {Decimal(r["billed_cost_usd"]) for r in rows if r["purpose"] == "routing"} == {Decimal(0)}
    note = page.content.decode()
    assert 'id="unbilled-note"' in note and "0.000500 USD of this filter was not billed: routing" in note


def test_the_cost_review_comes_after_the_export_button(staff_client, events):
    page = staff_client.get(URL).content.decode()
    # The button floats right above the review; the review clears it (checked in a browser by
    # ops/tests/test_browser.py: the rectangles do not meet).
    assert page.index('id="export-csv"') < page.index('class="cost-review"') < page.index('id="changelist"')


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


def test_each_call_names_the_deployment_that_served_it(staff_client):
    LlmCallEventFactory(deployment="fake-east")
    LlmCallEventFactory(deployment="")
    page = staff_client.get(URL).content.decode()
    assert "deepseek@fake-east · agent" in page
    assert page.count("deepseek · agent") == 1  # the one without a deployment: the alias alone
