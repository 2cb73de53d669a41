"""The floor the bench measures Pantheon against: exactly a turn's minimal work, nothing more."""

import pytest
from rest_framework.test import APIClient

from sessions_app.models import Message, Turn
from sessions_app.tests.factories import SessionFactory
from tools.bench.calls import FLOOR_PATH, server_timing_parse
from usage.models import LlmCallEvent
from usage.services.tokens import api_token_issue, api_token_used

pytestmark = pytest.mark.urls("tools.bench.urls")

SENT = {
    "model": "deepseek/deepseek-chat",
    "messages": [
        {"role": "system", "content": "You are the writer."},
        {"role": "user", "content": "@writer a first line for the storm chapter"},
    ],
    "max_tokens": 256,
    "temperature": 0.7,
    "usage": {"include": True},
}


def _client_of(user, keyword: str = "Token") -> APIClient:
    client = APIClient()
    token, raw = api_token_issue(user=user)
    api_token_used(token=token)  # as the bench's users: a request within the minute writes nothing
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    return client


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_floor_writes_a_turn_two_messages_and_a_usage_event_in_six_statements(fake_llm):
    session = SessionFactory()
    client = _client_of(session.room.owner)

    first = client.post(FLOOR_PATH, {"session": str(session.pk), "request": SENT}, format="json")
    second = client.post(FLOOR_PATH, {"session": str(session.pk), "request": SENT}, format="json")

    assert first.status_code == second.status_code == 201
    # The token, the locking select, 4 inserts: outside a test transaction, as the bench runs it.
    assert server_timing_parse(first["Server-Timing"])["queries"] == 6
    assert server_timing_parse(second["Server-Timing"])["queries"] == 6
    turns = list(Turn.objects.filter(session=session).order_by("turn_index"))
    assert [t.turn_index for t in turns] == [1, 2]
    assert turns[0].user_input == "@writer a first line for the storm chapter"
    assert turns[0].assistant_output == first.json()["assistant_output"] != ""
    assert Message.objects.filter(session=session).count() == 4
    event = LlmCallEvent.objects.get(turn_id=turns[0].pk)
    assert (event.user_id, event.session_id, event.input_tokens > 0) == (
        session.room.owner.pk,
        session.pk,
        True,
    )


@pytest.mark.django_db
def test_floor_sends_the_llm_the_very_request_it_is_given(fake_llm):
    session = SessionFactory()

    _client_of(session.room.owner).post(
        FLOOR_PATH, {"session": str(session.pk), "request": SENT}, format="json"
    )

    assert [r.body for r in fake_llm.requests] == [SENT]


@pytest.mark.django_db
def test_floor_answers_404_for_another_users_session_and_writes_nothing(fake_llm, other_user):
    session = SessionFactory()

    response = _client_of(other_user).post(
        FLOOR_PATH, {"session": str(session.pk), "request": SENT}, format="json"
    )

    assert response.status_code == 404
    assert not Turn.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_floor_authenticates_with_api_tokens_only(fake_llm):
    session = SessionFactory()
    body = {"session": str(session.pk), "request": SENT}

    assert APIClient().post(FLOOR_PATH, body, format="json").status_code == 401
    forged = APIClient(HTTP_AUTHORIZATION=f"Token {'0' * 64}").post(FLOOR_PATH, body, format="json")
    assert forged.status_code == 401
    assert fake_llm.requests == []
