"""Sessions over HTTP (nested under rooms), and the ownership of everything a session holds."""

from decimal import Decimal

import pytest

from pantheon.tests.ownership import OwnershipMatrix
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.models import ChatSession
from sessions_app.tests.factories import (
    MessageFactory,
    SessionFactory,
    SessionSummaryFactory,
    TurnFactory,
)
from usage.models import LlmCallEvent
from usage.tests.factories import LlmCallEventFactory

pytestmark = pytest.mark.django_db


def test_create_list_retrieve_delete_session(api_client, user):
    room = RoomFactory(owner=user)
    created = api_client.post(f"/api/v1/rooms/{room.pk}/sessions", {"title": "Plot"}, format="json")
    assert created.status_code == 201, created.content
    session_id = created.json()["id"]
    assert created.json()["turn_count"] == 0

    listed = api_client.get(f"/api/v1/rooms/{room.pk}/sessions")
    assert [s["id"] for s in listed.json()["results"]] == [session_id]
    assert api_client.get(f"/api/v1/rooms/{room.pk}/sessions/{session_id}").json()["title"] == "Plot"

    assert api_client.delete(f"/api/v1/rooms/{room.pk}/sessions/{session_id}").status_code == 204
    assert ChatSession.objects.get(pk=session_id).deleted_at is not None
    assert api_client.get(f"/api/v1/rooms/{room.pk}/sessions/{session_id}").status_code == 404
    assert api_client.get(f"/api/v1/rooms/{room.pk}/sessions").json()["results"] == []
    assert api_client.get(f"/api/v1/sessions/{session_id}/turns").status_code == 404


def test_session_body_cannot_set_id_room_or_counters(api_client, user):
    room, other_room = RoomFactory(owner=user), RoomFactory(owner=user)
    body = {
        "title": "x",
        "id": "00000000-0000-0000-0000-000000000001",
        "room_id": str(other_room.pk),
        "turn_count": 99,
        "last_turn_index": 99,
    }
    response = api_client.post(f"/api/v1/rooms/{room.pk}/sessions", body, format="json")
    assert response.status_code == 201
    session = ChatSession.objects.get(pk=response.json()["id"])
    assert session.room_id == room.pk and session.last_turn_index == 0
    assert str(session.pk) != body["id"]


# --- Ownership: someone else's session, its turns, summaries and usage are 404 and stay unchanged. --


class TestSessionOwnership(OwnershipMatrix):
    endpoints = [
        ("get", "/api/v1/rooms/{room}/sessions", None),
        ("post", "/api/v1/rooms/{room}/sessions", {"title": "intruder"}),
        ("get", "/api/v1/rooms/{room}/sessions/{session}", None),
        ("delete", "/api/v1/rooms/{room}/sessions/{session}", None),
        ("get", "/api/v1/sessions/{session}/turns", None),
        ("post", "/api/v1/sessions/{session}/turns", {"user_input": "@writer hi", "mode": "manual"}),
        ("get", "/api/v1/sessions/{session}/summaries", None),
        ("get", "/api/v1/sessions/{session}/usage", None),
    ]

    def make_victim(self):
        session = SessionFactory(title="Private")
        AgentFactory(room=session.room, agent_key="writer")
        turn = TurnFactory(session=session)
        MessageFactory(turn=turn)
        SessionSummaryFactory(session=session, covers_through_turn_index=turn.turn_index)
        LlmCallEventFactory(
            user=session.room.owner, room_id=session.room_id, session_id=session.pk, turn_id=turn.pk
        )
        return session.room.owner, {"room": str(session.room_id), "session": str(session.pk)}

    def snapshot(self, url_kwargs):
        session = ChatSession.objects.get(pk=url_kwargs["session"])
        return (
            (session.title, session.deleted_at, session.updated_at, session.last_turn_index),
            list(ChatSession.objects.filter(room_id=url_kwargs["room"]).values_list("pk", flat=True)),
            list(session.turns.values_list("turn_index", "user_input", "assistant_output", "status")),
            list(session.messages.values_list("pk", flat=True)),
            list(session.summaries.values_list("covers_through_turn_index", "summary_text")),
            list(LlmCallEvent.objects.values_list("pk", flat=True)),  # no call made for anyone
        )


def test_sessions_of_a_deleted_room_are_404(api_client, user):
    session = SessionFactory(room=RoomFactory(owner=user))
    session.room.deleted_at = session.created_at
    session.room.save()
    assert api_client.get(f"/api/v1/sessions/{session.pk}/turns").status_code == 404
    assert api_client.get(f"/api/v1/rooms/{session.room_id}/sessions").status_code == 404


def test_malformed_ids_are_404_json(api_client):
    response = api_client.get("/api/v1/sessions/not-a-uuid/turns")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- What a session holds, read back: turns with their messages, summaries, usage. ---------------


def test_turns_are_listed_by_index_failed_ones_included_with_messages_in_order(api_client, session):
    first = TurnFactory(session=session)
    failed = TurnFactory(session=session, failed=True)
    for turn in (first, failed):
        MessageFactory(turn=turn, order=0)
    MessageFactory(turn=first, role="assistant", agent_key="writer", content=first.assistant_output, order=1)
    body = api_client.get(f"/api/v1/sessions/{session.pk}/turns").json()
    assert [(t["turn_index"], t["status"]) for t in body["results"]] == [(1, "completed"), (2, "failed")]
    assert [(m["role"], m["agent_key"]) for m in body["results"][0]["messages"]] == [
        ("user", ""),
        ("assistant", "writer"),
    ]
    assert body["results"][1]["agent_errors"] == [{"agent_key": "writer", "code": "provider_unavailable"}]


def test_summaries_show_their_structured_lists(api_client, session):
    SessionSummaryFactory(
        session=session,
        covers_through_turn_index=8,
        key_facts=["The keeper is Ada."],
        decisions=["Set in 1920."],
        open_questions=["Who rang the bell?"],
        action_items=["Outline chapter 2."],
        summary_used_fallback=True,
    )
    [summary] = api_client.get(f"/api/v1/sessions/{session.pk}/summaries").json()["results"]
    assert (summary["key_facts"], summary["decisions"]) == (["The keeper is Ada."], ["Set in 1920."])
    assert (summary["open_questions"], summary["action_items"]) == (
        ["Who rang the bell?"],
        ["Outline chapter 2."],
    )
    assert summary["summary_used_fallback"] is True and summary["extraction_used_fallback"] is False


def test_session_usage_counts_only_that_sessions_events(api_client, user, room, session):
    LlmCallEventFactory(user=user, room_id=room.pk, session_id=session.pk)
    LlmCallEventFactory(user=user, room_id=room.pk, session_id=session.pk, purpose="routing", unbilled=True)
    LlmCallEventFactory(user=user, room_id=room.pk, session_id=SessionFactory(room=room).pk)  # a sibling's
    body = api_client.get(f"/api/v1/sessions/{session.pk}/usage").json()
    assert body["count"] == 2 and body["totals"]["events"] == 2
    assert Decimal(body["totals"]["cost_usd"]) == Decimal("0.001450")
    assert Decimal(body["totals"]["credits_burned"]) == Decimal("0.7250")  # the routing call is unbilled
