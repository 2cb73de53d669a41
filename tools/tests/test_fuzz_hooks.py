"""The fuzzing hooks hand out the ids the run owns: spare ones to DELETE, the kept ones elsewhere."""

import pytest

from tools.fuzz_hooks import body_deepen, real_path_parameters

IDS = {
    "room_id": "room",
    "agent_key": "writer",
    "session_id": "session",
    "spare_room_id": "spare-room",
    "spare_agent_key": "spare",
    "spare_session_id": "spare-session",
}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/rooms/{room_id}", {"room_id": "room"}),
        ("PATCH", "/api/v1/rooms/{room_id}/agents/{agent_key}", {"agent_key": "writer"}),
        ("DELETE", "/api/v1/rooms/{room_id}", {"room_id": "spare-room"}),
        ("DELETE", "/api/v1/rooms/{room_id}/agents/{agent_key}", {"room_id": "room", "agent_key": "spare"}),
        ("delete", "/api/v1/rooms/{room_id}/sessions/{session_id}", {"session_id": "spare-session"}),
        ("DELETE", "/api/v1/openai/keys/{key_id}", {"room_id": "room"}),  # no spare: the id stays generated
    ],
)
def test_delete_operations_get_the_spare_objects_and_others_the_kept_ones(method, path, expected):
    real = real_path_parameters(method, path, IDS)
    assert {name: real[name] for name in expected} == expected


def test_a_deepened_body_names_a_catalog_model_and_tags_an_agent(monkeypatch):
    monkeypatch.setattr("tools.fuzz_hooks._ids", IDS)
    body = {"model_alias": "zz", "user_input": "hello", "name": "x"}
    body_deepen(body, draw=0.1, choice="qwen")
    assert body == {"model_alias": "qwen", "user_input": "@writer hello", "name": "x"}
    untouched = {"model_alias": "zz", "user_input": "hello"}
    body_deepen(untouched, draw=0.95, choice="qwen")
    assert untouched == {"model_alias": "zz", "user_input": "hello"}


def test_a_deepened_chat_completion_names_a_room_of_the_user_and_ends_with_a_tag(monkeypatch):
    monkeypatch.setattr("tools.fuzz_hooks._ids", IDS)
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": ""}]}
    body_deepen(body, draw=0.1, choice="qwen")
    assert body == {
        "model": "room-room",
        "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "@writer hello"}],
    }
