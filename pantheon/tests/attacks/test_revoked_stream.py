"""Row 7 of the credentials audit: a stream already running on an API key ran to its end after the key
was revoked. Now the stream asks its credential at each agent's end: the agent in progress finishes
(its tokens are paid for and billed), no further agent is called, the turn commits as partial."""

import threading

import pytest
from openai import OpenAI
from rest_framework.test import APIClient

from orchestration.testing.fake_server import Step
from sessions_app.models import Turn
from sessions_app.tests.test_api_turn_stream import EventStream
from usage.models import LlmCallEvent
from usage.services.tokens import api_token_issue

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.integration,
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen"), ("judge", "gpt-4o-mini")),
]

WRITER = "deepseek/deepseek-chat"


def test_a_token_revoked_mid_stream_stops_the_turn_at_the_next_agent(live_server, user, session, fake_llm):
    stored, token = api_token_issue(user=user, name="laptop")
    _, other = api_token_issue(user=user, name="phone")
    writer = Step(model=WRITER, reply="The keeper climbs the stairs at dusk.", gate_after=1)
    fake_llm.enqueue(writer)
    stream = EventStream(
        live_server, token, session, {"user_input": "@writer @critic @judge go", "stream": True}
    )
    events = stream.events()
    assert [next(events)[0] for _ in range(3)] == ["turn.started", "agent.started", "agent.delta"]

    # Revoked from the other device while the writer is still writing.
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert client.delete(f"/api/v1/auth/tokens/{stored.public_id}").status_code == 204
    writer.release()
    rest = list(events)

    completed = dict(rest)["turn.completed"]
    assert completed["status"] == "partial"
    assert [(e["agent_key"], e["code"]) for e in completed["agent_errors"]] == [
        ("critic", "credential_revoked"),
        ("judge", "credential_revoked"),
    ]
    assert [r.model for r in fake_llm.requests] == [WRITER]  # the critic and the judge never called
    # The writer's words were paid for: billed like any call.
    event = LlmCallEvent.objects.get(turn_id=completed["id"])
    assert event.agent_key == "writer" and event.billable and event.credits_burned > 0
    assert Turn.objects.get(pk=completed["id"]).status == "partial"


def test_an_api_key_revoked_mid_stream_stops_the_openai_compatible_stream(
    live_server, api_client, room, session, fake_llm
):
    created = api_client.post("/api/v1/openai/keys", {"name": "Open WebUI"}).json()
    sdk = OpenAI(base_url=f"{live_server.url}/api/openai/v1", api_key=created["key"], max_retries=0)
    writer = Step(model=WRITER, reply="The keeper climbs the stairs at dusk.", gate_after=1)
    fake_llm.enqueue(writer)
    chunks: list = []

    def read() -> None:
        stream = sdk.chat.completions.create(
            model=f"room-{room.pk}",
            messages=[{"role": "user", "content": "@writer @critic @judge go"}],
            stream=True,
        )
        chunks.extend(stream)

    reader = threading.Thread(target=read)
    reader.start()
    assert writer.held.wait(10)  # the writer is mid-reply
    assert api_client.delete(f"/api/v1/openai/keys/{created['id']}").status_code == 204
    writer.release()
    reader.join(30)
    assert not reader.is_alive() and chunks

    assert [r.model for r in fake_llm.requests] == [WRITER]
    turn = Turn.objects.get(user_input="@writer @critic @judge go")
    assert turn.status == "partial" and turn.responding_agent_keys == ["writer"]
