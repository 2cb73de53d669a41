import pytest

from rooms.tests.factories import RoomFactory
from sessions_app.models import ChatSession
from sessions_app.tests.factories import SessionFactory

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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/rooms/{room}/sessions"),
        ("post", "/api/v1/rooms/{room}/sessions"),
        ("get", "/api/v1/rooms/{room}/sessions/{session}"),
        ("delete", "/api/v1/rooms/{room}/sessions/{session}"),
        ("get", "/api/v1/sessions/{session}/turns"),
        ("post", "/api/v1/sessions/{session}/turns"),
        ("get", "/api/v1/sessions/{session}/summaries"),
        ("get", "/api/v1/sessions/{session}/usage"),
    ],
)
def test_another_users_session_is_404_and_unchanged(other_client, method, path):
    session = SessionFactory()
    url = path.format(room=session.room_id, session=session.pk)
    response = getattr(other_client, method)(
        url, {"user_input": "@agent hi", "mode": "manual"}, format="json"
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    session.refresh_from_db()
    assert session.deleted_at is None and session.last_turn_index == 0
    assert session.turns.count() == 0


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
