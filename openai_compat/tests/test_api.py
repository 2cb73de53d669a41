"""The endpoint's HTTP contract beyond what the SDK tests show: the OpenAI error shape for every
refusal, which refusals a client may retry, what the request may hold, API keys, and the chunks."""

import json
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import ClassVar

import pytest
import yaml
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from openai_compat.api.completions import CompletionChunks
from openai_compat.api.views import ChatCompletionView
from openai_compat.fingerprint import TranscriptMessage, fingerprint_of, turn_fingerprint
from openai_compat.models import ApiKey
from openai_compat.services import api_key_create
from orchestration.services.calls import reply_clean
from pantheon import limits
from pantheon.api import throttling
from pantheon.tests.ownership import OwnershipMatrix
from rooms.tests.factories import RoomFactory
from sessions_app.models import ChatSession, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import Budget, CreditLedgerEntry
from usage.tests.factories import UserFactory, balance_set

pytestmark = pytest.mark.django_db

URL = "/api/openai/v1/chat/completions"


def chat(client, room, text="@writer hello", suffix="", headers=None, **body):
    payload = {"model": f"room-{room.pk}{suffix}", "messages": [{"role": "user", "content": text}], **body}
    return client.post(URL, payload, format="json", headers=headers or {})


def assert_openai_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


def test_without_credentials_the_answer_is_401_in_the_openai_shape(anon_client, room):
    response = anon_client.get("/api/openai/v1/models")
    error = assert_openai_error(response, 401, "not_authenticated")
    assert error["type"] == "authentication_error" and response["WWW-Authenticate"] == "Bearer"


def test_a_malformed_request_names_the_field_in_param(api_client, room):
    response = api_client.post(URL, {"model": f"room-{room.pk}", "messages": []}, format="json")
    error = assert_openai_error(response, 400, "invalid")
    assert error["param"] == "messages" and error["type"] == "invalid_request_error"
    assert response["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.[0].content.[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]},
            "messages",
        ),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": "@writer hi"}, {"role": "user", "content": ""}]},
            "messages",
        ),
        ({"messages": [{"role": "user", "content": "a\x00b"}]}, "messages.[0].content"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]},
            "messages.[0].content.[0].text",
        ),
        ({"metadata": {"session_id": "not-this-one"}}, "metadata"),
        ({"metadata": {"session_id": 12}}, "metadata"),
    ],
    ids=[
        "n=2",
        "image",
        "assistant last",
        "blank input",
        "blank last input",
        "NUL",
        "unknown role",
        "text part not text",
        "session mismatch",
        "session not a string",
    ],
)
def test_what_a_room_cannot_honour_is_refused_with_400(api_client, room, body, param):
    session = SessionFactory(room=room)
    response = chat(api_client, room, headers={"X-Pantheon-Session": str(session.pk)}, **body)
    assert assert_openai_error(response, 400, "invalid")["param"] == param
    assert not Turn.objects.exists() and ChatSession.objects.count() == 1


def test_text_parts_and_ignored_parameters_are_accepted(api_client, room):
    response = api_client.post(
        URL,
        {
            "model": f"room-{room.pk}",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "@writer hello"}]},
            ],
            "temperature": 0.2,
            "max_tokens": 50,
            "user": "someone",
            "n": 1,
            "metadata": {"chat_id": 42, "tags": ["x"]},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert Turn.objects.get().user_input == "@writer hello"


def test_a_conversation_of_20000_messages_is_one_turn_on_its_last_message(api_client, room):
    """A long chat resent whole — text and text parts, system and tool messages, an unanswered user
    message — is a turn on its last message, in a session its next request finds again."""
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(9_999):
        question = f"question {i:05d} " + "x" * 280
        messages.append(
            {"role": "user", "content": [{"type": "text", "text": question}] if i % 3 else question}
        )
        messages.append({"role": "assistant", "content": f"Writer: answer {i} — é", "name": None})
        if i % 1_000 == 0:
            messages.append({"role": "tool", "content": "{}", "tool_call_id": f"t{i}"})
    messages += [
        {"role": "user", "content": "unanswered"},
        {"role": "user", "content": " @writer and now?\r\n"},
    ]
    assert len(messages) >= 20_000
    model = f"room-{room.pk}"

    first = api_client.post(URL, {"model": model, "messages": messages}, format="json")

    assert first.status_code == 200, first.content[:300]
    turn = Turn.objects.get()
    assert turn.user_input == "@writer and now?" and turn.responding_agent_keys == ["writer"]
    assert turn.session.title == "question 00000…"  # its first message, cut at a word
    history = [
        (m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
        for m in messages[:-2]
        if m["role"] in ("user", "assistant")
    ]
    expected = turn_fingerprint(
        fingerprint_of(TranscriptMessage(role, text) for role, text in history),
        user_input=turn.user_input,
        reply=first.json()["choices"][0]["message"]["content"],
    )
    assert ChatSession.objects.get().transcript_fingerprint == expected
    reply = {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]}
    following = [*messages, reply, {"role": "user", "content": "@writer go on"}]
    second = api_client.post(URL, {"model": model, "messages": following}, format="json")
    assert second.status_code == 200 and second["X-Pantheon-Session"] == first["X-Pantheon-Session"]
    assert ChatSession.objects.get().transcript_fingerprint != expected
    assert [t.user_input for t in Turn.objects.order_by("turn_index")] == [
        "@writer and now?",
        "@writer go on",
    ]


@pytest.mark.parametrize(
    "model_id",
    ["gpt-4o", "room-", "room-00000000-0000-0000-0000-000000000000", "room-{room}:chaos", "room-{room}:"],
)
def test_a_model_that_is_not_one_of_your_rooms_is_404_model_not_found(api_client, room, model_id):
    model_id = model_id.format(room=room.pk)
    error = assert_openai_error(api_client.get(f"/api/openai/v1/models/{model_id}"), 404, "model_not_found")
    assert error["type"] == "not_found_error"
    response = api_client.post(
        URL, {"model": model_id, "messages": [{"role": "user", "content": "hi"}]}, format="json"
    )
    assert_openai_error(response, 404, "model_not_found")
    assert response["x-should-retry"] == "false"


def test_a_deleted_room_is_no_longer_a_model(api_client, room):
    room.deleted_at = timezone.now()
    room.save()
    assert api_client.get("/api/openai/v1/models").json()["data"] == []
    assert_openai_error(chat(api_client, room), 404, "model_not_found")


def test_other_paths_of_the_endpoint_answer_404_in_the_openai_shape(api_client):
    assert_openai_error(api_client.post("/api/openai/v1/embeddings", {}, format="json"), 404, "not_found")


def test_a_refusal_carries_the_native_extra_fields_and_no_retry(api_client, user, room):
    balance_set(user, 0)
    CreditLedgerEntry.objects.create(user=user, kind="adjustment", amount=-1000, balance_after=0)
    response = chat(api_client, room)
    error = assert_openai_error(response, 402, "insufficient_credits")
    assert error["type"] == "insufficient_quota" and "required_credits" in error
    assert response["x-should-retry"] == "false"
    assert not ChatSession.objects.live().exists()  # the session opened for it is gone


def test_a_streamed_request_refused_before_any_call_answers_json(api_client, room):
    response = chat(api_client, room, text="nobody tagged", suffix=":manual", stream=True)
    assert response["Content-Type"] == "application/json"
    assert_openai_error(response, 422, "no_agent_selected")


def test_a_busy_session_before_any_call_leaves_the_retry_to_the_client(api_client, room, settings):
    settings.TURN_CLAIM_WAIT_SECONDS = 0.2
    session = SessionFactory(room=room)
    ChatSession.objects.filter(pk=session.pk).update(
        claim_token="00000000-0000-0000-0000-000000000001",
        claim_expires_at=timezone.now() + timedelta(minutes=1),
    )
    response = chat(api_client, room, headers={"X-Pantheon-Session": str(session.pk)})
    assert_openai_error(response, 409, "turn_conflict")
    assert "x-should-retry" not in response and response["Retry-After"]


def test_a_rate_limited_request_leaves_the_retry_to_the_client(api_client, room, monkeypatch):
    monkeypatch.setattr(ChatCompletionView, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", {"turns": "1/min"})
    monkeypatch.setattr(limits, "_clock", lambda: 1_800_000_030.0)  # one window for the whole test
    assert chat(api_client, room).status_code == 200
    response = chat(api_client, room)
    assert_openai_error(response, 429, "throttled")
    assert "x-should-retry" not in response and response["Retry-After"]


def test_a_replayed_stream_sends_the_stored_reply(api_client, room):
    headers = {"Idempotency-Key": "stream-replay"}
    first = chat(api_client, room, headers=headers).json()
    response = chat(api_client, room, headers=headers, stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200 and response["Idempotent-Replayed"] == "true"
    events = b"".join(response.streaming_content).decode().split("\n\n")
    chunks = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == (first["choices"][0]["message"]["content"])
    )
    assert chunks[-2]["pantheon"]["replayed"] is True and chunks[-1]["usage"] == first["usage"]
    assert events[-2] == "data: [DONE]"


# --- API keys -------------------------------------------------------------------------------------


def test_an_api_key_is_shown_once_and_stored_only_as_a_hash(api_client, user):
    created = api_client.post("/api/v1/openai/keys", {"name": "LibreChat"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("pan-") and created.json()["prefix"] == key[:12]
    stored = ApiKey.objects.get(user=user)
    assert stored.key_hash != key and key not in {stored.key_hash, stored.prefix, stored.name}
    listed = api_client.get("/api/v1/openai/keys").json()["results"]
    assert [k["name"] for k in listed] == ["LibreChat"] and "key" not in listed[0]


def test_an_api_key_opens_the_openai_endpoint_only(anon_client, api_client, room):
    key = api_client.post("/api/v1/openai/keys", {"name": "UI"}, format="json").json()["key"]
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert anon_client.get("/api/openai/v1/models").status_code == 200
    assert ApiKey.objects.get().last_used_at is not None
    # Not the native API, and never the management of keys: a leaked key cannot make more.
    assert anon_client.get("/api/v1/rooms").status_code == 401
    assert anon_client.post("/api/v1/openai/keys", {"name": "more"}, format="json").status_code == 401


def test_a_key_notes_its_use_at_most_once_a_minute_with_no_write_in_between(anon_client, api_client, room):
    key = api_client.post("/api/v1/openai/keys", {"name": "UI"}, format="json").json()["key"]
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    anon_client.get("/api/openai/v1/models")
    first = ApiKey.objects.get().last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert anon_client.get("/api/openai/v1/models").status_code == 200
    assert ApiKey.objects.get().last_used_at == first
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    anon_client.get("/api/openai/v1/models")
    assert ApiKey.objects.get().last_used_at > first


def test_a_revoked_or_unknown_key_is_401(anon_client, api_client):
    body = api_client.post("/api/v1/openai/keys", {"name": "UI"}, format="json").json()
    assert api_client.delete(f"/api/v1/openai/keys/{body['id']}").status_code == 204
    assert api_client.delete(f"/api/v1/openai/keys/{body['id']}").status_code == 204  # revoking twice is fine
    for key in (body["key"], "pan-not-a-key"):
        anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert_openai_error(anon_client.get("/api/openai/v1/models"), 401, "not_authenticated")


class TestApiKeyOwnership(OwnershipMatrix):
    endpoints: ClassVar = [
        ("get", "/api/v1/openai/keys/{key_id}", None),
        ("delete", "/api/v1/openai/keys/{key_id}", None),
    ]
    lists: ClassVar = [("/api/v1/openai/keys", "id", "{key_id}")]

    def make_victim(self):
        owner = UserFactory()
        api_key, _ = api_key_create(user=owner, name="theirs")
        return owner, {"key_id": str(api_key.pk)}

    def snapshot(self, url_kwargs):
        return list(ApiKey.objects.filter(pk=url_kwargs["key_id"]).values())


def test_the_admin_revokes_keys(api_client, admin_client):
    api_client.post("/api/v1/openai/keys", {"name": "UI"}, format="json")
    key = ApiKey.objects.get()
    response = admin_client.post(
        "/admin/openai_compat/apikey/", {"action": "revoke", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


# --- the chunks of a stream ---------------------------------------------------------------------


def test_streamed_content_adds_up_to_the_stored_reply(room):
    writer = [" ", " Hello", " ", " world", "  \n", "\x00"]
    judge = ["Fine.", "\n"]
    chat = SimpleNamespace(model=SimpleNamespace(id=f"room-{room.pk}"))
    chunks = CompletionChunks(chat, turn_id=room.pk, include_usage=False)
    events = [
        ("agent.started", {"agent_key": "writer", "agent_name": "Writer"}),
        *(("agent.delta", {"agent_key": "writer", "text": t}) for t in writer),
        ("agent.completed", {"agent_key": "writer"}),
        ("agent.started", {"agent_key": "critic", "agent_name": "Critic"}),
        ("agent.failed", {"agent_key": "critic", "code": "provider_timeout"}),
        ("agent.started", {"agent_key": "judge", "agent_name": "Judge"}),
        *(("agent.delta", {"agent_key": "judge", "text": t}) for t in judge),
        ("agent.completed", {"agent_key": "judge"}),
    ]
    for name, data in events:
        chunks.encode(name, data)
    stored = f"Writer: {reply_clean(''.join(writer))}\n\nJudge: {reply_clean(''.join(judge))}"
    assert "".join(chunks.sent) == stored == "Writer: Hello  world\n\nJudge: Fine."


def test_the_schema_documents_the_endpoint_with_the_openai_error_shape(tmp_path):
    path = tmp_path / "schema.yml"
    call_command("spectacular", validate=True, fail_on_warn=True, file=str(path))
    paths = yaml.safe_load(path.read_text())["paths"]
    post = paths["/api/openai/v1/chat/completions"]["post"]
    assert {"200", "400", "401", "402", "404", "409", "422", "429", "502"} <= set(post["responses"])
    ref = post["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/OpenAIError")
    assert set(paths["/api/openai/v1/models/{model_id}"]) == {"get"}


@pytest.mark.parametrize("session_id", ["not-a-uuid", "123", "%00", "0" * 40])
def test_an_explicit_session_that_is_no_id_is_404(api_client, room, session_id):
    response = chat(api_client, room, headers={"X-Pantheon-Session": session_id})
    assert_openai_error(response, 404, "not_found")
    assert not Turn.objects.exists()


def test_another_users_room_is_not_a_model_of_yours(api_client, other_user):
    theirs = RoomFactory(owner=other_user)
    assert_openai_error(api_client.get(f"/api/openai/v1/models/room-{theirs.pk}"), 404, "model_not_found")
    assert f"room-{theirs.pk}" not in {
        m["id"] for m in api_client.get("/api/openai/v1/models").json()["data"]
    }


def test_a_preview_through_a_key_answers_its_budget_and_keeps_nothing(
    anon_client, api_client, user, room, fake_llm
):
    key = api_client.post("/api/v1/openai/keys", {"name": "UI"}, format="json").json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key['key']}")
    budget = Budget.objects.create(
        user=user, api_key_id=key["id"], period="day", limit_credits=Decimal("0.01")
    )

    by_metadata = chat(anon_client, room, metadata={"pantheon_preview": True})
    by_header = chat(anon_client, room, headers={"X-Pantheon-Preview": "true"})

    assert by_metadata.status_code == 200 and by_metadata.json()["object"] == "pantheon.turn_preview"
    assert by_metadata.json()["refusal"]["code"] == "budget_exceeded"
    assert by_metadata.json()["refusal"]["budget"]["id"] == budget.pk
    assert by_header.json()["worst_case_credits"] == by_metadata.json()["worst_case_credits"]
    assert not ChatSession.objects.exists() and not Turn.objects.exists() and not fake_llm.requests


def test_a_turn_through_a_key_answers_to_the_keys_budget(anon_client, api_client, user, room, fake_llm):
    key = api_client.post("/api/v1/openai/keys", {"name": "UI"}, format="json").json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key['key']}")
    Budget.objects.create(user=user, api_key_id=key["id"], period="day", limit_credits=Decimal("0.01"))

    refused = chat(anon_client, room)
    through_token = chat(api_client, room)  # the same user without the key: not its budget

    assert_openai_error(refused, 402, "budget_exceeded")
    assert through_token.status_code == 200
