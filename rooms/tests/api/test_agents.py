"""Agents over HTTP: CRUD by key, order, ownership, validation, conflicts, mass assignment, soft delete."""

import pytest

from pantheon.tests.ownership import OwnershipMatrix
from rooms.models import Agent
from rooms.tests.factories import AgentFactory, RoomFactory
from usage.models import LlmModel

pytestmark = pytest.mark.django_db

WRITER = {"agent_key": "writer", "name": "Writer", "model_alias": "deepseek", "role_prompt": "You write."}


def agents_url(room) -> str:
    return f"/api/v1/rooms/{room.pk}/agents"


def live_keys(room) -> list[str]:
    return list(
        Agent.objects.live().filter(room=room).order_by("position").values_list("agent_key", flat=True)
    )


def test_create_agent(api_client, user):
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), {**WRITER, "position": 3}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "agent_key",
        "name",
        "model_alias",
        "role_prompt",
        "position",
        "context_window_tokens",
        "url",
        "room_url",
        "created_at",
        "updated_at",
    }
    assert (body["agent_key"], body["model_alias"], body["position"]) == ("writer", "deepseek", 3)
    assert body["context_window_tokens"] is None
    assert body["url"] == f"http://testserver/api/v1/rooms/{room.pk}/agents/writer"
    assert body["room_url"] == f"http://testserver/api/v1/rooms/{room.pk}"
    agent = Agent.objects.get(room=room, agent_key="writer")
    assert (agent.name, agent.role_prompt, agent.position) == ("Writer", "You write.", 3)


def test_position_defaults_to_after_the_last_agent(api_client, user):
    room = RoomFactory(owner=user)
    first = api_client.post(agents_url(room), {**WRITER, "agent_key": "a"}, format="json")
    assert first.json()["position"] == 0
    api_client.post(agents_url(room), {**WRITER, "agent_key": "b", "position": 7}, format="json")
    third = api_client.post(agents_url(room), {**WRITER, "agent_key": "c"}, format="json")
    assert third.json()["position"] == 8
    assert live_keys(room) == ["a", "b", "c"]


def test_agents_are_listed_by_position_not_creation(api_client, user):
    room = RoomFactory(owner=user)
    for key, position in [("writer", 5), ("critic", 1), ("scout", 3)]:
        api_client.post(agents_url(room), {**WRITER, "agent_key": key, "position": position}, format="json")
    body = api_client.get(agents_url(room)).json()
    assert body["count"] == 3
    assert [a["agent_key"] for a in body["results"]] == ["critic", "scout", "writer"]
    room_body = api_client.get(f"/api/v1/rooms/{room.pk}").json()
    assert [a["agent_key"] for a in room_body["agents"]] == ["critic", "scout", "writer"]


def test_retrieve_by_key(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Writer", model_alias="qwen")
    response = api_client.get(f"{agents_url(room)}/writer")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["model_alias"]) == ("Writer", "qwen")


def test_patch_changes_only_the_fields_sent(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Writer", role_prompt="You write.", position=4)
    response = api_client.patch(
        f"{agents_url(room)}/writer", {"model_alias": "qwen", "position": 0}, format="json"
    )
    assert response.status_code == 200
    agent = Agent.objects.get(room=room, agent_key="writer")
    assert (agent.model_alias, agent.position) == ("qwen", 0)
    assert (agent.name, agent.role_prompt) == ("Writer", "You write.")


def test_patch_can_rename_the_key(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer")
    response = api_client.patch(f"{agents_url(room)}/writer", {"agent_key": "novelist"}, format="json")
    assert response.status_code == 200 and response.json()["agent_key"] == "novelist"
    assert api_client.get(f"{agents_url(room)}/writer").status_code == 404
    assert api_client.get(f"{agents_url(room)}/novelist").status_code == 200


def test_patch_with_its_own_key_is_not_a_conflict(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer")
    response = api_client.patch(
        f"{agents_url(room)}/writer", {"agent_key": "writer", "name": "W"}, format="json"
    )
    assert response.status_code == 200 and Agent.objects.get(room=room).name == "W"


def test_put_is_not_part_of_the_contract(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Writer")
    response = api_client.put(f"{agents_url(room)}/writer", {**WRITER, "name": "Replaced"}, format="json")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert Agent.objects.get(room=room).name == "Writer"


def test_an_unknown_key_is_404(api_client, user):
    room = RoomFactory(owner=user)
    response = api_client.get(f"{agents_url(room)}/nobody")
    assert response.status_code == 404 and response.json() == {"detail": "Not found.", "code": "not_found"}


# --- Ownership: another user's room and agents are 404 everywhere and stay unchanged. --------------


class TestAgentOwnership(OwnershipMatrix):
    endpoints = [
        ("get", "/api/v1/rooms/{room}/agents", None),
        (
            "post",
            "/api/v1/rooms/{room}/agents",
            {"agent_key": "intruder", "name": "I", "model_alias": "qwen"},
        ),
        ("get", "/api/v1/rooms/{room}/agents/{agent}", None),
        ("patch", "/api/v1/rooms/{room}/agents/{agent}", {"name": "hijacked", "agent_key": "hijacked"}),
        ("delete", "/api/v1/rooms/{room}/agents/{agent}", None),
    ]
    lists = [("/api/v1/rooms", "id", "{room}")]
    missing = {"agent": "nobody"}

    def make_victim(self):
        agent = AgentFactory(room=RoomFactory(name="Private"), agent_key="writer", name="Writer")
        return agent.room.owner, {"room": str(agent.room_id), "agent": agent.agent_key}

    def snapshot(self, url_kwargs):
        return list(
            Agent.objects.filter(room_id=url_kwargs["room"])
            .order_by("pk")
            .values_list("agent_key", "name", "model_alias", "position", "deleted_at", "updated_at")
        )


def test_a_key_of_someone_elses_room_is_not_reachable_through_your_room(api_client, user):
    AgentFactory(agent_key="secret")  # in a room of another user
    mine = RoomFactory(owner=user)
    assert api_client.get(f"{agents_url(mine)}/secret").status_code == 404


# --- Validation: 4xx with detail, code and fields; never 500. --------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "Writer",  # uppercase
        "WRITER",
        "1writer",  # leading digit
        "w" * 33,  # too long
        "wri ter",  # space
        " ",
        "",
        "_writer",
        "-writer",
        "writer!",
        "wrïter",
        "a/b",
        "a.b",
    ],
)
def test_bad_agent_keys_are_400_with_the_field(api_client, user, key):
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), {**WRITER, "agent_key": key}, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid" and error["detail"] and "agent_key" in error["fields"]
    assert not Agent.objects.filter(room=room).exists()


@pytest.mark.parametrize("key", ["a", "writer", "w" * 32, "a1_b-c", "z-9"])
def test_good_agent_keys_are_accepted(api_client, user, key):
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), {**WRITER, "agent_key": key}, format="json")
    assert response.status_code == 201 and live_keys(room) == [key]


def test_renaming_to_a_bad_key_is_400_and_changes_nothing(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer")
    response = api_client.patch(f"{agents_url(room)}/writer", {"agent_key": "Bad Key"}, format="json")
    assert response.status_code == 400 and "agent_key" in response.json()["fields"]
    assert live_keys(room) == ["writer"]


def test_a_duplicate_live_key_is_409_agent_key_taken(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Original")
    response = api_client.post(agents_url(room), {**WRITER, "name": "Copy"}, format="json")
    assert response.status_code == 409
    error = response.json()
    assert (
        error["code"] == "agent_key_taken" and "writer" in error["detail"] and "agent_key" in error["fields"]
    )
    assert list(Agent.objects.filter(room=room).values_list("name", flat=True)) == ["Original"]


def test_renaming_to_a_taken_key_is_409_and_changes_nothing(api_client, user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", position=0)
    AgentFactory(room=room, agent_key="critic", position=1)
    response = api_client.patch(f"{agents_url(room)}/critic", {"agent_key": "writer"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "agent_key_taken"
    assert live_keys(room) == ["writer", "critic"]


def test_the_same_key_in_another_room_is_fine(api_client, user):
    AgentFactory(room=RoomFactory(owner=user), agent_key="writer")
    room = RoomFactory(owner=user)
    assert api_client.post(agents_url(room), WRITER, format="json").status_code == 201


def test_a_deleted_agents_key_can_be_reused(api_client, user):
    room = RoomFactory(owner=user)
    assert api_client.post(agents_url(room), {**WRITER, "name": "First"}, format="json").status_code == 201
    assert api_client.delete(f"{agents_url(room)}/writer").status_code == 204
    response = api_client.post(agents_url(room), {**WRITER, "name": "Second"}, format="json")
    assert response.status_code == 201
    assert Agent.objects.filter(room=room, agent_key="writer").count() == 2
    assert api_client.get(f"{agents_url(room)}/writer").json()["name"] == "Second"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**WRITER, "model_alias": "gpt-17"}, "model_alias"),
        ({**WRITER, "model_alias": ""}, "model_alias"),
        ({k: v for k, v in WRITER.items() if k != "model_alias"}, "model_alias"),
        ({k: v for k, v in WRITER.items() if k != "agent_key"}, "agent_key"),
        ({**WRITER, "name": ""}, "name"),
        ({**WRITER, "name": "   "}, "name"),
        ({k: v for k, v in WRITER.items() if k != "name"}, "name"),
        ({**WRITER, "name": "n" * 101}, "name"),
        ({**WRITER, "model_alias": "m" * 65}, "model_alias"),
        ({**WRITER, "role_prompt": "r" * 20001}, "role_prompt"),
        ({**WRITER, "position": -1}, "position"),
        ({**WRITER, "position": 10_001}, "position"),
        ({**WRITER, "position": "first"}, "position"),
    ],
)
def test_invalid_agent_body_is_400_with_the_field(api_client, user, body, field):
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid" and error["detail"] and field in error["fields"]
    assert not Agent.objects.filter(room=room).exists()


def test_a_deactivated_model_is_refused(api_client, user):
    LlmModel.objects.filter(alias="llama").update(is_active=False)
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), {**WRITER, "model_alias": "llama"}, format="json")
    assert response.status_code == 400 and "model_alias" in response.json()["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model_alias": "gpt-17"}, "model_alias"),
        ({"name": ""}, "name"),
        ({"role_prompt": "r" * 20001}, "role_prompt"),
        ({"position": -1}, "position"),
    ],
)
def test_invalid_patch_is_400_and_changes_nothing(api_client, user, body, field):
    room = RoomFactory(owner=user)
    agent = AgentFactory(room=room, agent_key="writer", name="Writer", model_alias="deepseek")
    response = api_client.patch(f"{agents_url(room)}/writer", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    agent.refresh_from_db()
    assert (agent.name, agent.model_alias) == ("Writer", "deepseek")


# --- Mass assignment: room, id, timestamps and deleted_at are never writable. ----------------------


def test_protected_fields_in_a_create_body_are_ignored(api_client, user):
    room, other_room = RoomFactory(owner=user), RoomFactory(owner=user)
    body = {
        **WRITER,
        "id": 999_999,
        "room": str(other_room.pk),
        "room_id": str(other_room.pk),
        "created_at": "2001-01-01T00:00:00Z",
        "deleted_at": "2001-01-01T00:00:00Z",
    }
    assert api_client.post(agents_url(room), body, format="json").status_code == 201
    agent = Agent.objects.get(agent_key="writer")
    assert agent.room == room and agent.pk != 999_999
    assert agent.deleted_at is None and agent.created_at.year > 2001


def test_protected_fields_in_a_patch_body_are_ignored(api_client, user):
    room, other_room = RoomFactory(owner=user), RoomFactory(owner=user)
    agent = AgentFactory(room=room, agent_key="writer")
    created_at = agent.created_at
    body = {
        "name": "Renamed",
        "id": 999_999,
        "room": str(other_room.pk),
        "created_at": "2001-01-01T00:00:00Z",
        "deleted_at": "2001-01-01T00:00:00Z",
    }
    assert api_client.patch(f"{agents_url(room)}/writer", body, format="json").status_code == 200
    agent.refresh_from_db()
    assert agent.name == "Renamed" and agent.room == room and agent.pk != 999_999
    assert agent.deleted_at is None and agent.created_at == created_at


# --- Soft delete. ----------------------------------------------------------------------------------


def test_delete_is_soft_and_the_agent_disappears_from_every_view(api_client, user):
    room = RoomFactory(owner=user)
    writer = AgentFactory(room=room, agent_key="writer", position=0)
    AgentFactory(room=room, agent_key="critic", position=1)
    response = api_client.delete(f"{agents_url(room)}/writer")
    assert response.status_code == 204 and response.content == b""

    writer.refresh_from_db()
    assert writer.deleted_at is not None
    assert [a["agent_key"] for a in api_client.get(agents_url(room)).json()["results"]] == ["critic"]
    assert [a["agent_key"] for a in api_client.get(f"/api/v1/rooms/{room.pk}").json()["agents"]] == ["critic"]
    assert [a["agent_key"] for a in api_client.get("/api/v1/rooms").json()["results"][0]["agents"]] == [
        "critic"
    ]
    for method, body in [("get", None), ("patch", {"name": "back"}), ("delete", None)]:
        response = getattr(api_client, method)(f"{agents_url(room)}/writer", body, format="json")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    writer.refresh_from_db()
    assert writer.name != "back"


def test_a_deleted_agent_no_longer_answers_turns(api_client, room, session, turn_post):
    assert api_client.delete(f"{agents_url(room)}/writer").status_code == 204
    turn = turn_post("@writer hi")
    assert turn.status_code == 422 and turn.json()["agent_keys"] == ["researcher", "critic"]


# --- Authentication. ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", ""), ("get", "/writer"), ("patch", "/writer"), ("delete", "/writer")],
)
def test_without_credentials_every_agent_endpoint_is_401(anon_client, method, suffix):
    agent = AgentFactory(agent_key="writer", name="Writer")
    url = f"{agents_url(agent.room)}{suffix}"
    response = getattr(anon_client, method)(url, {**WRITER, "name": "x"}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"
    agent.refresh_from_db()
    assert agent.name == "Writer" and agent.deleted_at is None
