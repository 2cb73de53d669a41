"""Rooms over HTTP: CRUD, ownership, validation, mass assignment, soft delete."""

import pytest
from django.utils import timezone

from pantheon.tests.ownership import OwnershipMatrix
from rooms.models import Agent, Room
from rooms.tests.factories import AgentFactory, RoomFactory

pytestmark = pytest.mark.django_db

ROOMS = "/api/v1/rooms"


def test_create_room_belongs_to_the_caller(api_client, user):
    response = api_client.post(ROOMS, {"name": "Salon", "description": "Ideas"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "description",
        "agents",
        "url",
        "agents_url",
        "sessions_url",
        "created_at",
        "updated_at",
    }
    assert body["name"] == "Salon" and body["description"] == "Ideas" and body["agents"] == []
    room = Room.objects.get(pk=body["id"])
    assert room.owner == user and room.deleted_at is None


def test_description_is_optional(api_client):
    response = api_client.post(ROOMS, {"name": "Salon"}, format="json")
    assert response.status_code == 201 and response.json()["description"] == ""


def test_list_is_paginated_newest_first_with_live_agents_by_position(api_client, user):
    older = RoomFactory(owner=user, name="Older")
    newer = RoomFactory(owner=user, name="Newer")
    AgentFactory(room=newer, agent_key="second", position=2)
    AgentFactory(room=newer, agent_key="first", position=1)
    AgentFactory(room=newer, agent_key="gone", position=0, deleted_at=timezone.now())
    body = api_client.get(ROOMS).json()
    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [str(newer.pk), str(older.pk)]
    assert [a["agent_key"] for a in body["results"][0]["agents"]] == ["first", "second"]


def test_retrieve_shows_the_room_and_its_agents(api_client, user):
    room = RoomFactory(owner=user, name="Salon")
    AgentFactory(room=room, agent_key="writer", model_alias="qwen")
    body = api_client.get(f"{ROOMS}/{room.pk}").json()
    assert body["id"] == str(room.pk) and body["name"] == "Salon"
    assert [(a["agent_key"], a["model_alias"]) for a in body["agents"]] == [("writer", "qwen")]


def test_patch_changes_only_the_fields_sent(api_client, user):
    room = RoomFactory(owner=user, name="Salon", description="Ideas")
    response = api_client.patch(f"{ROOMS}/{room.pk}", {"name": "Parlour"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Parlour" and response.json()["description"] == "Ideas"
    room.refresh_from_db()
    assert (room.name, room.description) == ("Parlour", "Ideas")


def test_patch_can_clear_the_description(api_client, user):
    room = RoomFactory(owner=user, description="Ideas")
    assert api_client.patch(f"{ROOMS}/{room.pk}", {"description": ""}, format="json").status_code == 200
    room.refresh_from_db()
    assert room.description == ""


def test_put_is_not_part_of_the_contract(api_client, user):
    room = RoomFactory(owner=user, name="Salon")
    response = api_client.put(f"{ROOMS}/{room.pk}", {"name": "Replaced"}, format="json")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    room.refresh_from_db()
    assert room.name == "Salon"


def test_allow_header_lists_only_the_contract_methods(api_client, user):
    room = RoomFactory(owner=user)
    allowed = {m.strip() for m in api_client.options(f"{ROOMS}/{room.pk}")["Allow"].split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed and "PUT" not in allowed


# --- Ownership: another user's room is 404 everywhere and stays unchanged. ------------------------


class TestRoomOwnership(OwnershipMatrix):
    endpoints = [
        ("get", "/api/v1/rooms/{room}", None),
        ("patch", "/api/v1/rooms/{room}", {"name": "hijacked", "description": "hijacked"}),
        ("delete", "/api/v1/rooms/{room}", None),
        (
            "post",
            "/api/v1/rooms/{room}/agents",
            {"agent_key": "intruder", "name": "I", "model_alias": "qwen"},
        ),
    ]
    lists = [("/api/v1/rooms", "id", "{room}")]

    def make_victim(self):
        room = RoomFactory(name="Private", description="Mine")
        AgentFactory(room=room, agent_key="writer")
        return room.owner, {"room": str(room.pk)}

    def snapshot(self, url_kwargs):
        room = Room.objects.get(pk=url_kwargs["room"])
        agents = list(Agent.objects.filter(room=room).values_list("agent_key", "name", "deleted_at"))
        return room.name, room.description, room.deleted_at, room.updated_at, agents


# --- Validation: 400 with detail, code and fields; never 500. --------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Salon", "description": "d" * 5001}, "description"),
        ({"name": ["a", "list"]}, "name"),
    ],
)
def test_invalid_room_body_is_400_with_the_field(api_client, body, field):
    response = api_client.post(ROOMS, body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid" and error["detail"] and field in error["fields"]
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"description": "d" * 5001}, "description")],
)
def test_invalid_patch_is_400_and_changes_nothing(api_client, user, body, field):
    room = RoomFactory(owner=user, name="Salon", description="Ideas")
    response = api_client.patch(f"{ROOMS}/{room.pk}", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    room.refresh_from_db()
    assert (room.name, room.description) == ("Salon", "Ideas")


@pytest.mark.parametrize("raw", ["[1, 2]", '"just a string"', "{broken", ""])
def test_a_body_that_is_not_a_json_object_is_400(api_client, raw):
    response = api_client.generic("POST", ROOMS, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and response.json()["detail"]
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/rooms/not-a-uuid",
        "/api/v1/rooms/123",
        "/api/v1/rooms/not-a-uuid/agents",
        "/api/v1/rooms/not-a-uuid/agents/writer",
    ],
)
def test_a_malformed_room_id_is_404_not_500(api_client, path):
    response = api_client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_an_unknown_room_id_is_404(api_client):
    response = api_client.get(f"{ROOMS}/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


# --- Mass assignment: owner, id, timestamps and deleted_at are never writable. ---------------------

PROTECTED = {
    "id": "00000000-0000-4000-8000-000000000001",
    "created_at": "2001-01-01T00:00:00Z",
    "updated_at": "2001-01-01T00:00:00Z",
    "deleted_at": "2001-01-01T00:00:00Z",
    "agents": [{"agent_key": "smuggled", "name": "S", "model_alias": "qwen"}],
    "unknown_field": "ignored",
}


def test_protected_fields_in_a_create_body_are_ignored(api_client, user, other_user):
    response = api_client.post(ROOMS, {**PROTECTED, "name": "Mine", "owner": other_user.pk}, format="json")
    assert response.status_code == 201
    room = Room.objects.get(pk=response.json()["id"])
    assert str(room.pk) != PROTECTED["id"] and room.owner == user
    assert room.deleted_at is None and room.created_at.year > 2001 and room.updated_at.year > 2001
    assert not Agent.objects.filter(room=room).exists()
    assert not Room.objects.filter(owner=other_user).exists()


def test_protected_fields_in_a_patch_body_are_ignored(api_client, user, other_user):
    room = RoomFactory(owner=user)
    created_at = room.created_at
    body = {**PROTECTED, "name": "Renamed", "owner": other_user.pk}
    response = api_client.patch(f"{ROOMS}/{room.pk}", body, format="json")
    assert response.status_code == 200
    room.refresh_from_db()
    assert room.name == "Renamed" and room.owner == user
    assert room.deleted_at is None and room.created_at == created_at
    assert not Agent.objects.filter(room=room).exists()
    assert not Room.objects.filter(pk=PROTECTED["id"]).exists()


# --- Soft delete: gone from every list and lookup, rows kept. -------------------------------------


def test_delete_is_soft_and_the_room_then_answers_404_everywhere(api_client, user):
    room = RoomFactory(owner=user)
    agent = AgentFactory(room=room, agent_key="writer")
    response = api_client.delete(f"{ROOMS}/{room.pk}")
    assert response.status_code == 204 and response.content == b""

    room.refresh_from_db()
    agent.refresh_from_db()
    assert room.deleted_at is not None and agent.deleted_at is not None
    assert api_client.get(ROOMS).json()["results"] == []
    for method, path, body in [
        ("get", f"{ROOMS}/{room.pk}", None),
        ("patch", f"{ROOMS}/{room.pk}", {"name": "back"}),
        ("delete", f"{ROOMS}/{room.pk}", None),
        ("get", f"{ROOMS}/{room.pk}/agents", None),
        ("post", f"{ROOMS}/{room.pk}/agents", {"agent_key": "new", "name": "N", "model_alias": "qwen"}),
        ("get", f"{ROOMS}/{room.pk}/agents/writer", None),
        ("patch", f"{ROOMS}/{room.pk}/agents/writer", {"name": "back"}),
        ("delete", f"{ROOMS}/{room.pk}/agents/writer", None),
        ("get", f"{ROOMS}/{room.pk}/sessions", None),
    ]:
        response = getattr(api_client, method)(path, body, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "not_found"
    room.refresh_from_db()
    assert room.name != "back" and Agent.objects.filter(room=room).count() == 1


def test_deleting_one_room_leaves_the_others(api_client, user):
    kept, deleted = RoomFactory(owner=user), RoomFactory(owner=user)
    assert api_client.delete(f"{ROOMS}/{deleted.pk}").status_code == 204
    assert [r["id"] for r in api_client.get(ROOMS).json()["results"]] == [str(kept.pk)]


# --- Authentication. ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ROOMS),
        ("post", ROOMS),
        ("get", f"{ROOMS}/{{room}}"),
        ("patch", f"{ROOMS}/{{room}}"),
        ("delete", f"{ROOMS}/{{room}}"),
    ],
)
def test_without_credentials_every_room_endpoint_is_401(anon_client, method, path):
    room = RoomFactory(name="Salon")
    response = getattr(anon_client, method)(path.format(room=room.pk), {"name": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated" and response.json()["detail"]
    assert response["WWW-Authenticate"] == "Bearer"
    room.refresh_from_db()
    assert room.name == "Salon" and room.deleted_at is None


def test_paths_have_no_trailing_slash(api_client, user):
    room = RoomFactory(owner=user)
    assert api_client.get(f"{ROOMS}/{room.pk}").status_code == 200
    response = api_client.get(f"{ROOMS}/{room.pk}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
