"""Rooms and agents over HTTP: CRUD, the ownership matrix, validation, mass assignment, soft delete."""

import pytest

from rooms.models import Agent, Room
from rooms.tests.factories import AgentFactory, RoomFactory

pytestmark = pytest.mark.django_db

VALID_AGENT = {
    "agent_key": "writer",
    "name": "Writer",
    "model_alias": "deepseek",
    "role_prompt": "You write.",
}


def test_room_crud(api_client, user):
    created = api_client.post("/api/v1/rooms", {"name": "Salon", "description": "Ideas"}, format="json")
    assert created.status_code == 201
    room_id = created.json()["id"]
    assert created.json()["agents"] == []
    assert Room.objects.get(pk=room_id).owner == user

    assert api_client.get("/api/v1/rooms").json()["results"][0]["id"] == room_id
    patched = api_client.patch(f"/api/v1/rooms/{room_id}", {"name": "Parlour"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Parlour"
    assert patched.json()["description"] == "Ideas"

    assert api_client.delete(f"/api/v1/rooms/{room_id}").status_code == 204
    assert api_client.get(f"/api/v1/rooms/{room_id}").status_code == 404
    assert Room.objects.get(pk=room_id).deleted_at is not None


def test_put_is_not_part_of_the_contract(api_client, user):
    room = RoomFactory(owner=user)
    response = api_client.put(f"/api/v1/rooms/{room.pk}", {"name": "x"}, format="json")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_agents_crud_and_listed_by_position(api_client, user):
    room = RoomFactory(owner=user)
    base = f"/api/v1/rooms/{room.pk}/agents"
    assert api_client.post(base, {**VALID_AGENT, "position": 5}, format="json").status_code == 201
    second = api_client.post(
        base, {**VALID_AGENT, "agent_key": "critic", "name": "Critic", "position": 1}, format="json"
    )
    assert second.status_code == 201
    third = api_client.post(base, {**VALID_AGENT, "agent_key": "scout", "name": "Scout"}, format="json")
    assert third.json()["position"] == 6  # appended after the last one

    assert [a["agent_key"] for a in api_client.get(base).json()["results"]] == ["critic", "writer", "scout"]
    assert [a["agent_key"] for a in api_client.get(f"/api/v1/rooms/{room.pk}").json()["agents"]] == [
        "critic",
        "writer",
        "scout",
    ]
    patched = api_client.patch(f"{base}/writer", {"model_alias": "qwen", "position": 0}, format="json")
    assert patched.status_code == 200 and patched.json()["model_alias"] == "qwen"
    assert patched.json()["role_prompt"] == "You write."
    assert api_client.get(f"{base}/writer").json()["position"] == 0
    assert api_client.delete(f"{base}/writer").status_code == 204
    assert api_client.get(f"{base}/writer").status_code == 404
    assert [a["agent_key"] for a in api_client.get(base).json()["results"]] == ["critic", "scout"]


# --- The ownership matrix: another user's objects are 404 everywhere, and stay unchanged. ----------

OWNERSHIP_MATRIX = [
    ("get", "/api/v1/rooms/{room}", None),
    ("patch", "/api/v1/rooms/{room}", {"name": "hijacked"}),
    ("delete", "/api/v1/rooms/{room}", None),
    ("get", "/api/v1/rooms/{room}/agents", None),
    ("post", "/api/v1/rooms/{room}/agents", {**VALID_AGENT, "agent_key": "intruder"}),
    ("get", "/api/v1/rooms/{room}/agents/{agent}", None),
    ("patch", "/api/v1/rooms/{room}/agents/{agent}", {"name": "hijacked"}),
    ("delete", "/api/v1/rooms/{room}/agents/{agent}", None),
]


class OwnershipMatrix:
    """Reusable: every (method, path, body) in ``matrix`` must answer the intruder 404 and change nothing."""

    matrix = OWNERSHIP_MATRIX

    @pytest.fixture
    def victim_room(self):
        room = RoomFactory(name="Private")
        AgentFactory(room=room, agent_key="writer", name="Writer")
        return room

    def snapshot(self, room):
        room.refresh_from_db()
        agents = list(Agent.objects.filter(room=room).values_list("agent_key", "name", "deleted_at"))
        return (room.name, room.deleted_at, agents)

    @pytest.mark.parametrize(("method", "path", "body"), OWNERSHIP_MATRIX)
    def test_other_user_gets_404_and_changes_nothing(self, other_client, victim_room, method, path, body):
        before = self.snapshot(victim_room)
        url = path.format(room=victim_room.pk, agent="writer")
        response = getattr(other_client, method)(url, body, format="json")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
        assert self.snapshot(victim_room) == before

    def test_lists_never_show_other_users_rooms(self, other_client, victim_room):
        assert other_client.get("/api/v1/rooms").json()["results"] == []


class TestRoomOwnership(OwnershipMatrix):
    pass


# --- Validation: 4xx with the error shape, never 500. ---------------------------------------------


@pytest.mark.parametrize(
    "key", ["Writer", "1writer", "wri ter", "w" * 33, "", "writer!", "_writer", "-w", "wrïter", "a/b"]
)
def test_bad_agent_keys_are_400(api_client, user, key):
    room = RoomFactory(owner=user)
    response = api_client.post(
        f"/api/v1/rooms/{room.pk}/agents", {**VALID_AGENT, "agent_key": key}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "agent_key" in response.json()["fields"]
    assert not Agent.objects.filter(room=room).exists()


@pytest.mark.parametrize("key", ["a", "writer", "w" * 32, "a1_b-c"])
def test_good_agent_keys_are_accepted(api_client, user, key):
    room = RoomFactory(owner=user)
    response = api_client.post(
        f"/api/v1/rooms/{room.pk}/agents", {**VALID_AGENT, "agent_key": key}, format="json"
    )
    assert response.status_code == 201


def test_duplicate_live_key_is_409_and_deleted_key_can_be_reused(api_client, user):
    room = RoomFactory(owner=user)
    base = f"/api/v1/rooms/{room.pk}/agents"
    assert api_client.post(base, VALID_AGENT, format="json").status_code == 201
    duplicate = api_client.post(base, VALID_AGENT, format="json")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "agent_key_taken"
    assert api_client.delete(f"{base}/writer").status_code == 204
    assert api_client.post(base, VALID_AGENT, format="json").status_code == 201
    assert Agent.objects.filter(room=room, agent_key="writer").count() == 2
    assert Agent.objects.live().filter(room=room, agent_key="writer").count() == 1


def test_renaming_to_a_taken_key_is_409(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer")
    AgentFactory(room=room, agent_key="critic")
    response = api_client.patch(
        f"/api/v1/rooms/{room.pk}/agents/critic", {"agent_key": "writer"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "agent_key_taken"


def test_same_key_in_another_room_is_fine(api_client, user):
    AgentFactory(room=RoomFactory(owner=user), agent_key="writer")
    room = RoomFactory(owner=user)
    assert api_client.post(f"/api/v1/rooms/{room.pk}/agents", VALID_AGENT, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID_AGENT, "model_alias": "gpt-17"}, "model_alias"),
        ({**VALID_AGENT, "name": ""}, "name"),
        ({**VALID_AGENT, "name": "   "}, "name"),
        ({**VALID_AGENT, "name": "n" * 101}, "name"),
        ({**VALID_AGENT, "role_prompt": "r" * 20001}, "role_prompt"),
        ({**VALID_AGENT, "position": -1}, "position"),
        ({**VALID_AGENT, "position": "first"}, "position"),
        ({k: v for k, v in VALID_AGENT.items() if k != "model_alias"}, "model_alias"),
    ],
)
def test_invalid_agent_fields_are_400_with_the_field(api_client, user, body, field):
    room = RoomFactory(owner=user)
    response = api_client.post(f"/api/v1/rooms/{room.pk}/agents", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert response.json()["detail"]


def test_inactive_model_alias_is_rejected(api_client, user):
    from usage.models import LlmModel

    LlmModel.objects.filter(alias="llama").update(is_active=False)
    room = RoomFactory(owner=user)
    response = api_client.post(
        f"/api/v1/rooms/{room.pk}/agents", {**VALID_AGENT, "model_alias": "llama"}, format="json"
    )
    assert response.status_code == 400 and "model_alias" in response.json()["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"description": "d" * 5001}, "description"),
        ({}, "name"),
    ],
)
def test_invalid_room_fields_are_400(api_client, body, field):
    response = api_client.post("/api/v1/rooms", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert Room.objects.count() == 0


def test_non_object_bodies_are_400(api_client):
    for body in ("[1, 2]", '"just a string"', "{broken"):
        response = api_client.generic("POST", "/api/v1/rooms", body, content_type="application/json")
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid"


# --- Mass assignment: owner, id, timestamps and deleted_at are never writable. ---------------------


def test_room_protected_fields_are_ignored_on_create_and_patch(api_client, user, other_user):
    body = {
        "name": "Mine",
        "owner": other_user.pk,
        "id": "00000000-0000-0000-0000-000000000001",
        "created_at": "2001-01-01T00:00:00Z",
        "deleted_at": "2001-01-01T00:00:00Z",
    }
    created = api_client.post("/api/v1/rooms", body, format="json")
    assert created.status_code == 201
    room = Room.objects.get(pk=created.json()["id"])
    assert room.owner == user and str(room.pk) != body["id"]
    assert room.deleted_at is None and room.created_at.year > 2001

    patched = api_client.patch(f"/api/v1/rooms/{room.pk}", {**body, "name": "Still mine"}, format="json")
    assert patched.status_code == 200
    room.refresh_from_db()
    assert room.owner == user and room.deleted_at is None and room.name == "Still mine"


def test_agent_protected_fields_are_ignored(api_client, user):
    room, other_room = RoomFactory(owner=user), RoomFactory(owner=user)
    body = {**VALID_AGENT, "room": str(other_room.pk), "id": 999999, "deleted_at": "2001-01-01T00:00:00Z"}
    created = api_client.post(f"/api/v1/rooms/{room.pk}/agents", body, format="json")
    assert created.status_code == 201
    agent = Agent.objects.get(room=room, agent_key="writer")
    assert agent.deleted_at is None and agent.pk != 999999
    assert not Agent.objects.filter(room=other_room).exists()


# --- Soft delete hides everywhere. -------------------------------------------------------------------


def test_deleted_room_and_its_agents_are_hidden_from_every_lookup(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer")
    assert api_client.delete(f"/api/v1/rooms/{room.pk}").status_code == 204
    assert api_client.get("/api/v1/rooms").json()["results"] == []
    for url in (
        f"/api/v1/rooms/{room.pk}",
        f"/api/v1/rooms/{room.pk}/agents",
        f"/api/v1/rooms/{room.pk}/agents/writer",
    ):
        assert api_client.get(url).status_code == 404
    assert api_client.patch(f"/api/v1/rooms/{room.pk}", {"name": "back"}, format="json").status_code == 404
    assert api_client.delete(f"/api/v1/rooms/{room.pk}").status_code == 404
    assert api_client.post(f"/api/v1/rooms/{room.pk}/sessions", {}, format="json").status_code == 404


def test_deleted_agent_is_hidden_from_list_retrieve_and_turns(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer")
    AgentFactory(room=room, agent_key="critic")
    assert api_client.delete(f"/api/v1/rooms/{room.pk}/agents/writer").status_code == 204
    assert [a["agent_key"] for a in api_client.get(f"/api/v1/rooms/{room.pk}/agents").json()["results"]] == [
        "critic"
    ]
    assert [a["agent_key"] for a in api_client.get(f"/api/v1/rooms/{room.pk}").json()["agents"]] == ["critic"]
    session = api_client.post(f"/api/v1/rooms/{room.pk}/sessions", {}, format="json").json()
    turn = api_client.post(
        f"/api/v1/sessions/{session['id']}/turns",
        {"user_input": "@writer hi", "mode": "manual"},
        format="json",
    )
    assert turn.status_code == 422 and turn.json()["agent_keys"] == ["critic"]


def test_unauthenticated_requests_are_401(anon_client):
    for method, url in [("get", "/api/v1/rooms"), ("post", "/api/v1/rooms")]:
        response = getattr(anon_client, method)(url, {}, format="json")
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")
