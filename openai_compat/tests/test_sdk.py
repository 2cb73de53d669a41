"""The endpoint driven by the real ``openai`` SDK against a live server, the agents answering through
the real openai provider against the fake OpenAI-compatible server: what any chat client sees."""

import time

import openai
import pytest
from django.db.models import Sum
from openai import OpenAI

from orchestration.testing.fake_server import Step
from rooms.tests.factories import RoomFactory
from sessions_app.models import ChatSession, Turn
from usage.models import CreditLedgerEntry, LlmCallEvent
from usage.tests.factories import balance_set

pytestmark = [
    pytest.mark.integration,  # a live server
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.room(
        ("writer", "deepseek"), ("critic", "qwen"), name="Salon", description="Stories, argued."
    ),
]

WRITER, CRITIC = "deepseek/deepseek-chat", "qwen/qwen-2.5-72b-instruct"
COMPLETIONS = ("POST", "/api/openai/v1/chat/completions")


def model(room, suffix="") -> str:
    return f"room-{room.pk}{suffix}"


def say(client, room, history, text, suffix="", **options):
    messages = [*history, {"role": "user", "content": text}]
    completion = client.chat.completions.create(model=model(room, suffix), messages=messages, **options)
    reply = {"role": "assistant", "content": completion.choices[0].message.content}
    return completion, [*messages, reply]


def test_the_sdk_lists_the_users_rooms_as_models(client, user, other_user, room):
    second = RoomFactory(owner=user, name="Workshop")
    RoomFactory(owner=other_user, name="Not yours")
    listed = {m.id: m for m in client.models.list()}
    expected = {
        f"room-{r.pk}{s}"
        for r in (room, second)
        for s in ("", ":manual", ":roundtable", ":orchestrator", ":discussion")
    }
    assert set(listed) == expected
    salon = listed[model(room)]
    assert salon.owned_by == "pantheon" and salon.name == "Salon"
    assert "@writer Writer (deepseek)" in salon.description and "@critic Critic (qwen)" in salon.description
    assert client.models.retrieve(model(room, ":roundtable")).name == "Salon (roundtable)"


def test_a_three_turn_conversation_resending_its_history_lands_in_one_session(client, room):
    history, sessions = [], []
    for text in ("@writer begin the story", "@critic what is weak?", "@writer mend it"):
        completion, history = say(client, room, history, text)
        sessions.append(completion.pantheon["session_id"])
    assert len(set(sessions)) == 1
    session = ChatSession.objects.get(pk=sessions[0])
    turns = list(Turn.objects.filter(session=session).order_by("turn_index"))
    assert [t.user_input for t in turns] == [
        "@writer begin the story",
        "@critic what is weak?",
        "@writer mend it",
    ]
    assert [m["content"] for m in history if m["role"] == "assistant"] == [t.assistant_output for t in turns]


def test_the_session_comes_back_in_a_header_and_the_extension_field(client, room):
    raw = client.chat.completions.with_raw_response.create(
        model=model(room), messages=[{"role": "user", "content": "@writer hello"}]
    )
    completion = raw.parse()
    assert raw.headers["x-pantheon-session"] == completion.pantheon["session_id"]
    turn = Turn.objects.get(session_id=completion.pantheon["session_id"])
    assert completion.id == f"chatcmpl-{turn.pk.hex}" and completion.model == model(room)
    events = LlmCallEvent.objects.filter(turn_id=turn.pk)
    assert completion.usage.prompt_tokens == events.aggregate(s=Sum("input_tokens"))["s"]
    assert completion.usage.completion_tokens == events.aggregate(s=Sum("output_tokens"))["s"]
    assert completion.pantheon["credits_burned"] == str(events.aggregate(s=Sum("credits_burned"))["s"])


def test_a_second_conversation_in_the_same_room_opens_a_second_session(client, room):
    first, history = say(client, room, [], "@writer a story about a lighthouse")
    say(client, room, history, "@writer go on")
    second, _ = say(client, room, [], "@writer a story about a lighthouse")
    assert first.pantheon["session_id"] != second.pantheon["session_id"]
    assert ChatSession.objects.filter(room=room).count() == 2


def test_a_regenerated_last_message_forks(client, room):
    _, history = say(client, room, [], "@writer one")
    first, history = say(client, room, history, "@critic two")
    regenerated, _ = say(client, room, history[:2], "@critic two")  # the UI's "regenerate"
    original = first.pantheon["session_id"]
    assert regenerated.pantheon["session_id"] != original
    assert regenerated.pantheon["forked_from_session_id"] == original
    assert Turn.objects.filter(session_id=original).count() == 2
    fork = Turn.objects.filter(session_id=regenerated.pantheon["session_id"]).order_by("turn_index")
    assert [t.user_input for t in fork] == ["@writer one", "@critic two"]


def test_streaming_with_include_usage_yields_the_words_and_the_usage(client, room, fake_llm):
    fake_llm.enqueue(
        Step(model=WRITER, reply="The lamp turns all night."),
        Step(model=CRITIC, reply="Too calm; give it a storm."),
    )
    stream = client.chat.completions.create(
        model=model(room, ":roundtable"),
        messages=[{"role": "user", "content": "A lighthouse, please."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    text = "".join(pieces)
    assert text == "Writer: The lamp turns all night.\n\nCritic: Too calm; give it a storm."
    assert len([p for p in pieces if p]) > 2  # word by word, not in one piece
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    finish = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    turn = Turn.objects.get(pk=finish.pantheon["turn_id"])
    assert turn.assistant_output == text and turn.status == "completed"
    events = LlmCallEvent.objects.filter(turn_id=turn.pk)
    assert chunks[-1].usage.prompt_tokens == events.aggregate(s=Sum("input_tokens"))["s"]
    assert chunks[-1].usage.completion_tokens == events.aggregate(s=Sum("output_tokens"))["s"]

    # The streamed reply, resent, continues the same session.
    history = [{"role": "user", "content": "A lighthouse, please."}, {"role": "assistant", "content": text}]
    following, _ = say(client, room, history, "@writer more")
    assert following.pantheon["session_id"] == str(turn.session_id)


def test_a_stream_whose_every_agent_fails_ends_with_an_error_the_sdk_raises(client, room, fake_llm):
    fake_llm.enqueue(Step(model=WRITER, status=503))
    stream = client.chat.completions.create(
        model=model(room), messages=[{"role": "user", "content": "@writer hello"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert caught.value.code == "llm_unavailable"
    assert Turn.objects.get(pk=caught.value.body["turn_id"]).status == "failed"


def test_a_manual_tag_reaches_only_that_agent(client, room, fake_llm):
    completion, _ = say(client, room, [], "@critic is this opening any good?")
    assert [r.model for r in fake_llm.requests] == [CRITIC]
    assert completion.choices[0].message.content.startswith("Critic: ")
    assert completion.pantheon["mode"] == "manual" and completion.pantheon["responding_agent_keys"] == [
        "critic"
    ]


def _out_of_credits(user) -> None:
    balance_set(user, 0)
    CreditLedgerEntry.objects.create(user=user, kind="adjustment", amount=-1000, balance_after=0)


@pytest.mark.parametrize(
    ("case", "exception", "status", "code"),
    [
        ("another user's room", openai.NotFoundError, 404, "model_not_found"),
        ("manual without a tag", openai.UnprocessableEntityError, 422, "no_agent_selected"),
        ("out of credits", openai.APIStatusError, 402, "insufficient_credits"),
        ("every agent fails", openai.InternalServerError, 502, "llm_unavailable"),
    ],
)
def test_errors_come_back_as_the_sdks_own_types_after_a_single_request(
    client, user, other_user, room, fake_llm, received, case, exception, status, code
):
    target, suffix, text = room, "", "@writer hello"
    if case == "another user's room":
        target = RoomFactory(owner=other_user)
    elif case == "manual without a tag":
        suffix, text = ":manual", "nobody tagged"
    elif case == "out of credits":
        _out_of_credits(user)
    else:
        fake_llm.enqueue(Step(status=503))

    with pytest.raises(exception) as caught:
        say(client, target, [], text, suffix)

    error = caught.value
    assert error.status_code == status and error.code == code
    assert error.body["code"] == code and error.body["message"]
    assert received.count(COMPLETIONS) == 1  # the SDK's retries never ran
    assert len(fake_llm.requests) == (1 if status == 502 else 0)


def test_an_idempotency_key_replays_the_turn_without_running_it_again(client, room, fake_llm):
    headers = {"Idempotency-Key": "chat-retry-1"}
    first, _ = say(client, room, [], "@writer once", extra_headers=headers)
    calls = len(fake_llm.requests)
    again, _ = say(client, room, [], "@writer once", extra_headers=headers)
    assert again.pantheon["turn_id"] == first.pantheon["turn_id"] and again.pantheon["replayed"] is True
    assert again.choices[0].message.content == first.choices[0].message.content
    assert len(fake_llm.requests) == calls
    assert ChatSession.objects.filter(room=room).count() == 1


def test_an_api_key_works_until_it_is_revoked(live_server, api_client, room, fake_llm):
    created = api_client.post("/api/v1/openai/keys", {"name": "Open WebUI"}).json()
    client = OpenAI(base_url=f"{live_server.url}/api/openai/v1", api_key=created["key"], max_retries=0)
    assert model(room) in {m.id for m in client.models.list()}
    completion, _ = say(client, room, [], "@writer hello")
    assert completion.choices[0].message.content.startswith("Writer: ")

    assert api_client.delete(f"/api/v1/openai/keys/{created['id']}").status_code == 204
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.code == "not_authenticated"


def say_streamed(client, room, history, text) -> dict:
    """A streamed completion, read to its end; returns its ``pantheon`` extension."""
    stream = client.chat.completions.create(
        model=model(room), messages=[*history, {"role": "user", "content": text}], stream=True
    )
    chunks = list(stream)
    return next(c.pantheon for c in chunks if c.choices and c.choices[0].finish_reason == "stop")


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
