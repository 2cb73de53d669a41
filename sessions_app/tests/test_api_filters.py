"""Lists filter through the query string (django-filter); a bad filter value is a 400, never a 500."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from rooms.tests.factories import RoomFactory
from sessions_app.models import Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import LlmCallEvent

pytestmark = pytest.mark.django_db


def make_turn(session, index, *, status="completed", mode="manual", days_ago=0):
    turn = Turn.objects.create(
        session=session, turn_index=index, mode=mode, user_input=f"input {index}", status=status
    )
    Turn.objects.filter(pk=turn.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return turn


def make_event(session, *, purpose="agent_reply", model="deepseek", billable=True, days_ago=0, cost="0.001"):
    event = LlmCallEvent.objects.create(
        user=session.room.owner,
        room_id=session.room_id,
        session_id=session.pk,
        purpose=purpose,
        model_alias=model,
        provider_model=model,
        billable=billable,
        cost_usd=Decimal(cost),
    )
    LlmCallEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return event


def indexes(response):
    assert response.status_code == 200, response.json()
    return [t["turn_index"] for t in response.json()["results"]]


def test_turns_filter_by_status_mode_and_date(api_client, session):
    make_turn(session, 1, status="completed", mode="manual", days_ago=3)
    make_turn(session, 2, status="failed", mode="roundtable", days_ago=1)
    make_turn(session, 3, status="partial", mode="roundtable")
    url = f"/api/v1/sessions/{session.pk}/turns"
    assert indexes(api_client.get(url, {"status": "failed"})) == [2]
    assert indexes(api_client.get(url, {"mode": "roundtable"})) == [2, 3]
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert indexes(api_client.get(url, {"created_from": since})) == [2, 3]
    assert indexes(api_client.get(url, {"created_to": since})) == [1, 2]


@pytest.mark.parametrize("query", [{"status": "done"}, {"mode": "chaos"}, {"created_from": "last week"}])
def test_a_bad_turn_filter_is_a_400_with_the_error_shape(api_client, session, query):
    response = api_client.get(f"/api/v1/sessions/{session.pk}/turns", query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and set(body["fields"]) == set(query)


def test_usage_filters_by_purpose_model_billable_and_date_and_totals_follow(api_client, session):
    make_event(session, purpose="agent_reply", model="deepseek", cost="0.004")
    make_event(session, purpose="routing", model="deepseek", billable=False, cost="0.001")
    make_event(session, purpose="agent_reply", model="qwen", days_ago=2, cost="0.002")
    url = f"/api/v1/sessions/{session.pk}/usage"

    def totals(query):
        response = api_client.get(url, query)
        assert response.status_code == 200
        return response.json()["count"], Decimal(response.json()["totals"]["cost_usd"])

    assert totals({"purpose": "routing"}) == (1, Decimal("0.001"))
    assert totals({"model": "qwen"}) == (1, Decimal("0.002"))
    assert totals({"billable": "true"}) == (2, Decimal("0.006"))
    assert totals({"created_from": timezone.localdate().isoformat()}) == (2, Decimal("0.005"))
    assert totals({}) == (3, Decimal("0.007"))


def test_rooms_and_sessions_filter_by_name_and_title(api_client, user):
    salon, _ = RoomFactory(owner=user, name="The Salon"), RoomFactory(owner=user, name="Workshop")
    RoomFactory(name="Salon of someone else")
    names = [r["name"] for r in api_client.get("/api/v1/rooms", {"name": "salon"}).json()["results"]]
    assert names == ["The Salon"]
    SessionFactory(room=salon, title="Plot ideas")
    SessionFactory(room=salon, title="Budget")
    listed = api_client.get(f"/api/v1/rooms/{salon.pk}/sessions", {"title": "PLOT"}).json()["results"]
    assert [s["title"] for s in listed] == ["Plot ideas"]


def test_filters_never_reach_another_users_sessions(other_client, session):
    make_turn(session, 1)
    response = other_client.get(f"/api/v1/sessions/{session.pk}/turns", {"status": "completed"})
    assert response.status_code == 404
