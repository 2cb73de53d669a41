"""No input makes a 500: deep JSON is a 400, a NUL or control character in a path is a 404, a NUL in a
query string, header, cookie or any string field of a write endpoint is a 400 — on PostgreSQL, which
cannot store NUL — and such a request writes nothing."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from pantheon.api.parsers import json_depth_exceeds
from rooms.models import Agent, Room
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.models import ChatSession, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import LlmCallEvent

pytestmark = pytest.mark.django_db

NOT_FOUND = {"detail": "Not found.", "code": "not_found"}


@pytest.fixture
def world(user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Writer", model_alias="deepseek")
    session = SessionFactory(room=room)
    return {"room": room.pk, "session": session.pk}


@pytest.fixture
def lenient(api_client, anon_client):
    """Clients that answer a 500 as a response instead of raising, so a test sees the status."""
    api_client.raise_request_exception = False
    anon_client.raise_request_exception = False


def counts() -> tuple[int, ...]:
    models = (get_user_model(), Room, Agent, ChatSession, Turn, LlmCallEvent)
    return tuple(model.objects.count() for model in models)


# --- Deep JSON. ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_json_nested_too_deep_is_400_invalid(api_client, lenient, depth):
    response = api_client.generic(
        "POST", "/api/v1/rooms", "[" * depth + "]" * depth, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - the body nests deeper than 32 levels.",
        "code": "invalid",
    }
    assert not Room.objects.exists()


def test_a_deep_value_inside_an_ordinary_body_is_400_too(api_client, lenient, world):
    body = '{"user_input": "@writer hi", "mode": "manual", "extra": ' + "[" * 5_000 + "]" * 5_000 + "}"
    response = api_client.generic(
        "POST", f"/api/v1/sessions/{world['session']}/turns", body, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert not Turn.objects.exists() and not LlmCallEvent.objects.exists()


def test_json_within_the_depth_limit_is_parsed_as_usual(api_client):
    nested = "[" * 31 + "]" * 31
    body = '{"name": "Salon", "description": "", "ignored": ' + nested + "}"
    response = api_client.generic("POST", "/api/v1/rooms", body, content_type="application/json")
    assert response.status_code == 201 and Room.objects.get().name == "Salon"


@override_settings(API_JSON_MAX_DEPTH=2)
def test_the_depth_limit_is_a_setting(api_client):
    response = api_client.generic(
        "POST", "/api/v1/rooms", '{"name": [["x"]]}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON parse error - the body nests deeper than 2 levels."


@pytest.mark.parametrize(
    ("data", "limit", "exceeds"),
    [
        ("text", 0, False),
        ([], 1, False),
        ([], 0, True),
        ({"a": [1, {"b": []}]}, 4, False),
        ({"a": [1, {"b": []}]}, 3, True),
        ([[], [[[]]]], 3, True),
    ],
)
def test_json_depth_counts_nested_arrays_and_objects(data, limit, exceeds):
    assert json_depth_exceeds(data, limit) is exceeds


def _depth(value) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max(map(_depth, children), default=0)


JSON_VALUES = st.recursive(
    st.none() | st.integers() | st.text(max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=12,
)


@given(JSON_VALUES, st.integers(0, 6))
def test_json_depth_is_the_deepest_nesting_of_any_branch(data, limit):
    assert json_depth_exceeds(data, limit) is (_depth(data) > limit)


# --- Paths: NUL and control characters are 404, never a query. -----------------------------------

BAD_SEGMENTS = ["%00", "writer%00", "%00writer", "wri%0Ater", "writer%0D", "%7F", "%1B"]


@pytest.mark.parametrize("segment", BAD_SEGMENTS)
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_a_control_character_in_an_agent_key_is_404(api_client, lenient, world, method, segment):
    before = counts()
    url = f"/api/v1/rooms/{world['room']}/agents/{segment}"
    response = getattr(api_client, method)(url, {"name": "x"}, format="json")
    assert response.status_code == 404 and response.json() == NOT_FOUND
    assert counts() == before and Agent.objects.get().name == "Writer"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/rooms/%00",
        "/api/v1/rooms/{room}%00/agents",
        "/api/v1/rooms/{room}/sessions/%00",
        "/api/v1/sessions/%00/turns",
        "/api/v1/sessions/{session}%00/usage",
        "/api/v1/rooms%00",
        "/api/v1/%00",
    ],
)
def test_a_nul_anywhere_in_a_path_is_404(api_client, lenient, world, path):
    response = api_client.get(path.format(**world))
    assert response.status_code == 404 and response.json() == NOT_FOUND


def test_a_nul_in_an_admin_path_is_the_admins_own_404_page(api_client, lenient):
    response = api_client.get("/admin/%00/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("key", ["Writer", "1writer", "w" * 33, "wri ter", "writer.json", "é"])
def test_a_path_segment_that_cannot_be_an_agent_key_is_404_without_a_lookup(api_client, world, key):
    response = api_client.get(f"/api/v1/rooms/{world['room']}/agents/{key}")
    assert response.status_code == 404 and response.json() == NOT_FOUND


def test_the_schema_gives_the_agent_key_pattern_of_the_path(anon_client):
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    parameters = schema["paths"]["/api/v1/rooms/{room_id}/agents/{agent_key}"]["get"]["parameters"]
    agent_key = next(p for p in parameters if p["name"] == "agent_key")
    assert agent_key["schema"] == {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"}


# --- Query strings, headers and cookies: a NUL is a malformed request. ---------------------------


@pytest.mark.parametrize("query", ["page=%00", "page_size=1%00", "%00=1", "search=a%00b"])
def test_a_nul_in_the_query_string_is_400_invalid(api_client, lenient, world, query):
    response = api_client.get(f"/api/v1/rooms/{world['room']}/agents?{query}")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Null characters are not allowed in the query string.",
        "code": "invalid",
    }


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_AUTHORIZATION": "Bearer abc\x00def"},
        {"HTTP_AUTHORIZATION": "Token \x00"},
        {"HTTP_IDEMPOTENCY_KEY": "key\x00"},
        {"HTTP_ACCEPT_LANGUAGE": "en\x00"},
    ],
)
def test_a_nul_in_a_header_is_400_invalid_and_runs_nothing(anon_client, lenient, world, header):
    response = anon_client.post(
        f"/api/v1/sessions/{world['session']}/turns", {"user_input": "@writer hi"}, format="json", **header
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Null characters are not allowed in a header.", "code": "invalid"}
    assert not Turn.objects.exists()


def test_a_nul_in_the_session_cookie_is_400_invalid(anon_client, lenient):
    # A quoted cookie value may carry an octal escape, which the cookie parser decodes to a NUL.
    response = anon_client.get("/api/v1/rooms", HTTP_COOKIE='sessionid="abcdefgh\\000ijkl"')
    assert response.status_code == 400
    assert response.json() == {"detail": "Null characters are not allowed in a cookie.", "code": "invalid"}


def test_an_ordinary_request_passes_the_guard(api_client, world):
    response = api_client.get(f"/api/v1/rooms/{world['room']}/agents?page=1", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and response.json()["results"][0]["agent_key"] == "writer"


# --- Every string field of every write endpoint refuses NUL (and lone surrogates). ---------------

REGISTER = {"username": "ada", "password": "analytical-engine-1843", "email": "ada@example.com"}
ROOM = {"name": "Salon", "description": "Ideas"}
AGENT = {"agent_key": "critic", "name": "Critic", "model_alias": "qwen", "role_prompt": "You judge."}
AGENT_FIELDS = ("agent_key", "name", "model_alias", "role_prompt", "position", "context_window_tokens")
TURN = {"user_input": "@writer hi", "mode": "manual"}
WRITE_FIELDS = [
    *[("post", "/api/v1/auth/register", REGISTER, f) for f in ("username", "password", "email")],
    *[
        ("post", "/api/v1/auth/token", {"username": "ada", "password": "x"}, f)
        for f in ("username", "password")
    ],
    *[("post", "/api/v1/rooms", ROOM, f) for f in ROOM],
    *[("patch", "/api/v1/rooms/{room}", ROOM, f) for f in ROOM],
    *[("post", "/api/v1/rooms/{room}/agents", AGENT, f) for f in AGENT_FIELDS],
    *[("patch", "/api/v1/rooms/{room}/agents/writer", AGENT, f) for f in AGENT_FIELDS],
    ("post", "/api/v1/rooms/{room}/sessions", {"title": "Chat"}, "title"),
    *[("post", "/api/v1/sessions/{session}/turns", TURN, f) for f in TURN],
]


@pytest.mark.parametrize(
    "bad", ["nul\x00inside", "\x00", "lone \ud800 surrogate"], ids=["nul", "only-nul", "surrogate"]
)
@pytest.mark.parametrize(
    ("method", "url", "body", "field"), WRITE_FIELDS, ids=[f"{m} {u} {f}" for m, u, _, f in WRITE_FIELDS]
)
def test_a_bad_character_in_any_string_field_of_a_write_is_400_on_that_field(
    api_client, lenient, world, method, url, body, field, bad
):
    before = counts()
    payload = json.dumps({**body, field: bad})  # ASCII: a lone surrogate travels as "\ud800"
    response = api_client.generic(
        method.upper(), url.format(**world), payload, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "invalid" and field in error["fields"], error
    assert counts() == before
    assert Room.objects.get().name != bad and Agent.objects.get().name == "Writer"
