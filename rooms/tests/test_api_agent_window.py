"""An agent's own context window: up to the lower of its model's window and the operator's ceiling
(``CONTEXT_WINDOW_MAX_TOKENS``), with room beside the output allowance; re-checked on a model change."""

import pytest

from rooms.models import Agent
from rooms.tests.factories import AgentFactory, RoomFactory

pytestmark = pytest.mark.django_db

# Seeded catalog: deepseek 163,840 tokens (output 8,192), qwen 32,768, gpt-4o-mini 128,000 (16,384).
WRITER = {"agent_key": "writer", "name": "Writer", "model_alias": "deepseek"}


def agents_url(room) -> str:
    return f"/api/v1/rooms/{room.pk}/agents"


def assert_window_refused(response, *phrases: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and list(body["fields"]) == ["context_window_tokens"]
    for phrase in phrases:
        assert phrase in body["fields"]["context_window_tokens"][0]


def test_an_agent_can_be_given_a_window_up_to_its_models_and_shows_it(api_client, user):
    room = RoomFactory(owner=user)
    body = {**WRITER, "model_alias": "gpt-4o-mini", "context_window_tokens": 120_000}
    response = api_client.post(agents_url(room), body, format="json")
    assert response.status_code == 201 and response.json()["context_window_tokens"] == 120_000
    assert Agent.objects.get(room=room).context_window_tokens == 120_000
    assert api_client.get(f"/api/v1/rooms/{room.pk}").json()["agents"][0]["context_window_tokens"] == 120_000


def test_without_a_window_the_agent_has_none_and_uses_the_default(api_client, user):
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), WRITER, format="json")
    assert response.status_code == 201 and response.json()["context_window_tokens"] is None


def test_a_window_above_the_models_own_is_400_giving_the_ceiling(api_client, user):
    room = RoomFactory(owner=user)
    body = {**WRITER, "model_alias": "qwen", "context_window_tokens": 32_769}
    assert_window_refused(api_client.post(agents_url(room), body, format="json"), "At most 32768")
    assert not Agent.objects.exists()


def test_a_window_above_the_operators_ceiling_is_400_even_on_a_larger_model(api_client, user, settings):
    room = RoomFactory(owner=user)
    body = {**WRITER, "context_window_tokens": 131_073}  # deepseek's own window is 163,840
    assert_window_refused(api_client.post(agents_url(room), body, format="json"), "At most 131072")
    settings.CONTEXT_WINDOW_MAX_TOKENS = 16_000
    body = {**WRITER, "context_window_tokens": 16_001}
    assert_window_refused(api_client.post(agents_url(room), body, format="json"), "At most 16000")
    assert not Agent.objects.exists()


def test_a_window_that_leaves_no_room_beside_the_output_is_400(api_client, user):
    room = RoomFactory(owner=user)
    # Output allowance: min(8,192, CONTEXT_MAX_OUTPUT_TOKENS 2,048) + 1,024 of room.
    too_small = {**WRITER, "context_window_tokens": 3_071}
    assert_window_refused(api_client.post(agents_url(room), too_small, format="json"), "At least 3072")
    for value in (0, -5):
        assert (
            api_client.post(agents_url(room), {**WRITER, "context_window_tokens": value}).status_code == 400
        )
    smallest = {**WRITER, "context_window_tokens": 3_072}
    assert api_client.post(agents_url(room), smallest, format="json").status_code == 201


@pytest.mark.parametrize("value", ["large", 1.5, True, [8192]])
def test_a_window_that_is_not_an_integer_is_400(api_client, user, value):
    room = RoomFactory(owner=user)
    response = api_client.post(agents_url(room), {**WRITER, "context_window_tokens": value}, format="json")
    assert response.status_code == 400 and "context_window_tokens" in response.json()["fields"]


def test_changing_the_model_rechecks_the_window_and_changes_nothing_when_refused(api_client, user):
    room = RoomFactory(owner=user)
    agent = AgentFactory(room=room, agent_key="writer", model_alias="deepseek", context_window_tokens=100_000)
    response = api_client.patch(f"{agents_url(room)}/writer", {"model_alias": "qwen"}, format="json")
    assert_window_refused(response, "At most 32768", "'qwen'")
    agent.refresh_from_db()
    assert (agent.model_alias, agent.context_window_tokens) == ("deepseek", 100_000)

    both = {"model_alias": "qwen", "context_window_tokens": 30_000}
    response = api_client.patch(f"{agents_url(room)}/writer", both, format="json")
    assert response.status_code == 200 and response.json()["context_window_tokens"] == 30_000
    agent.refresh_from_db()
    assert (agent.model_alias, agent.context_window_tokens) == ("qwen", 30_000)


def test_patching_the_window_checks_it_against_the_current_model(api_client, user):
    room = RoomFactory(owner=user)
    agent = AgentFactory(room=room, agent_key="writer", model_alias="qwen", context_window_tokens=None)
    response = api_client.patch(
        f"{agents_url(room)}/writer", {"context_window_tokens": 40_000}, format="json"
    )
    assert_window_refused(response, "At most 32768")
    response = api_client.patch(
        f"{agents_url(room)}/writer", {"context_window_tokens": 16_384}, format="json"
    )
    assert response.status_code == 200
    agent.refresh_from_db()
    assert agent.context_window_tokens == 16_384


def test_patching_the_window_to_null_goes_back_to_the_default_and_other_patches_keep_it(api_client, user):
    room = RoomFactory(owner=user)
    agent = AgentFactory(room=room, agent_key="writer", context_window_tokens=50_000)
    response = api_client.patch(f"{agents_url(room)}/writer", {"name": "Scribe"}, format="json")
    assert response.status_code == 200 and response.json()["context_window_tokens"] == 50_000
    response = api_client.patch(f"{agents_url(room)}/writer", {"context_window_tokens": None}, format="json")
    assert response.status_code == 200 and response.json()["context_window_tokens"] is None
    agent.refresh_from_db()
    assert agent.context_window_tokens is None
