"""What third-party chat clients send that a room cannot (or can) take, through the real ``openai``
SDK against a live server: unserved paths and methods, parameters a room cannot honour, content
parts, long histories (docs/openai-compatible.md)."""

import httpx2 as httpx
import openai
import pytest

from openai_compat.tests.test_sdk import COMPLETIONS, model, say
from sessions_app.models import ChatSession, Turn
from usage.models import CreditLedgerEntry, LlmCallEvent

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen")),
]


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "type" in error and "param" in error
    return error


def nothing_ran(room, fake_llm) -> None:
    assert fake_llm.requests == []
    assert not Turn.objects.filter(session__room=room).exists()
    assert not ChatSession.objects.live().filter(room=room).exists()
    assert not LlmCallEvent.objects.exists()
    assert not CreditLedgerEntry.objects.exclude(kind="grant").exists()


# --- row 1: every path, every method ---------------------------------------------------------------


def test_the_responses_api_completions_and_embeddings_are_a_json_404_the_sdk_raises(client, room, received):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=model(room), input="hello")
    assert caught.value.code == "not_found"
    assert_openai_error(caught.value.response, 404, "not_found")
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=model(room), prompt="hello")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=model(room), input="hello")
    assert ("POST", "/api/openai/v1/responses") in received


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "responses", 404, "not_found"),
        ("PUT", "files/abc", 404, "not_found"),
        ("DELETE", "embeddings", 404, "not_found"),
        ("PATCH", "", 404, "not_found"),
        ("POST", "models", 405, "method_not_allowed"),
        ("DELETE", "models/room-x", 405, "method_not_allowed"),
        ("GET", "chat/completions", 405, "method_not_allowed"),
        ("PUT", "chat/completions", 405, "method_not_allowed"),
    ],
)
def test_every_path_and_method_answers_in_the_openai_shape_never_html_or_csrf(
    client, live_server, method, path, status, code
):
    """A raw request with a browser's cookie-less POST, as a client library sends it."""
    url = f"{live_server.url}/api/openai/v1/{path}"
    response = httpx.request(
        method, url, headers={"Authorization": f"Bearer {client.api_key}"}, json={"model": "x"}
    )
    assert_openai_error(response, status, code)


def test_the_base_url_itself_is_a_json_404_not_a_redirect(client, live_server):
    response = httpx.post(f"{live_server.url}/api/openai/v1", json={})
    assert_openai_error(response, 404, "not_found")


# --- row 8: long histories -------------------------------------------------------------------------


def long_history(messages: int, chars: int = 300) -> list[dict]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i:06d} " + "x" * (chars - 7)}
        for i in range(messages)
    ]


def test_a_long_history_over_djangos_limit_is_served(client, room, settings):
    """9,000 messages of 300 characters: ~3 MB, over Django's 2.5 MB, under the endpoint's bound."""
    history = long_history(9_000)
    completion, _ = say(client, room, history, "@writer and now?")
    assert completion.choices[0].message.content.startswith("Writer: ")
    assert settings.OPENAI_REQUEST_MAX_BYTES >= 16 * 1024 * 1024


def test_a_body_over_the_bound_is_a_413_in_the_openai_shape(client, room, fake_llm, settings, received):
    settings.OPENAI_REQUEST_MAX_BYTES = 1_000_000
    with pytest.raises(openai.APIStatusError) as caught:
        say(client, room, long_history(4_000), "@writer and now?")
    error = assert_openai_error(caught.value.response, 413, "request_too_large")
    assert "1000000 bytes" in error["message"]
    assert received.count(COMPLETIONS) == 1  # x-should-retry: false
    nothing_ran(room, fake_llm)


# --- row 5: message shapes -------------------------------------------------------------------------


def test_a_null_name_and_a_refusal_part_are_accepted_the_refusal_as_text(client, room):
    first, history = say(client, room, [], "@writer a tale")
    reply = history[-1]["content"]
    history[-1] = {"role": "assistant", "content": [{"type": "refusal", "refusal": reply}], "name": None}
    history[0]["name"] = None
    following, _ = say(client, room, history, "@critic judge it")
    assert following.pantheon["session_id"] == first.pantheon["session_id"]  # the refusal read as the text


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url", "image_url": {"url": "https://x/y.png"}}, "messages.[1].content.[1].type"),
        ({"type": "input_audio", "input_audio": {}}, "messages.[1].content.[1].type"),
        ({"text": "no type"}, "messages.[1].content.[1].type"),
        ({"type": "text", "text": 3}, "messages.[1].content.[1].text"),
    ],
)
def test_an_unsupported_content_part_is_a_400_naming_the_part(client, room, fake_llm, part, param):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "@writer look"}, part]},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model(room), messages=messages)
    error = caught.value.body
    assert error["param"] == param and error["code"] == "invalid"
    assert error["message"].startswith(param + ": ")
    if "type" in part:
        assert repr(part["type"]) in error["message"] or part["type"] == "text"
    nothing_ran(room, fake_llm)


# --- row 3: parameters a room cannot honour -------------------------------------------------------

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"tools": [TOOL], "tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            "tool_choice",
        ),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                }
            },
            "response_format",
        ),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
        ({"functions": [TOOL["function"]], "function_call": {"name": "get_weather"}}, "function_call"),
    ],
)
def test_a_parameter_a_room_cannot_honour_is_refused_up_front_naming_it(
    client, room, fake_llm, received, options, param
):
    with pytest.raises(openai.BadRequestError) as caught:
        say(client, room, [], "@writer the weather?", stream=False, **options)
    assert caught.value.body["param"] == param
    assert caught.value.body["message"].startswith(f"{param}: ")
    assert received.count(COMPLETIONS) == 1
    nothing_ran(room, fake_llm)


def test_the_sdks_parse_with_a_schema_is_refused_not_answered_in_prose(client, room, fake_llm):
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.parse(
            model=model(room),
            messages=[{"role": "user", "content": "@writer weather?"}],
            response_format=Weather,
        )
    assert caught.value.body["param"] == "response_format"
    nothing_ran(room, fake_llm)


@pytest.mark.parametrize("tool_choice", ["auto", "none", openai.NOT_GIVEN])
def test_tools_the_model_may_leave_unused_are_ignored(client, room, tool_choice):
    completion, _ = say(
        client,
        room,
        [],
        "@writer hello",
        tools=[TOOL],
        tool_choice=tool_choice,
        response_format={"type": "text"},
        n=1,
        logprobs=False,
        temperature=0.2,
        max_tokens=10,
        stop=["\n\n\n"],
        seed=7,
        user="someone",
        parallel_tool_calls=False,
    )
    message = completion.choices[0].message
    assert message.content.startswith("Writer: ") and not message.tool_calls
    assert completion.choices[0].finish_reason == "stop"


# --- row 7: a chat client's side tasks -------------------------------------------------------------

OPEN_WEBUI_TITLE_TASK = """### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: @writer a tale
ASSISTANT: Writer: Once upon a time.
</chat_history>"""


def test_a_client_side_task_that_still_arrives_is_titled_as_one(client, room):
    """Open WebUI with task generation left on sends its title prompt as a lone message."""
    completion, _ = say(client, room, [], "@writer " + OPEN_WEBUI_TITLE_TASK.replace("### Task:", "", 1))
    plain_session = ChatSession.objects.get(pk=completion.pantheon["session_id"])
    assert not plain_session.title.startswith("[client task]")

    task = client.chat.completions.create(
        model=model(room, ":roundtable"), messages=[{"role": "user", "content": OPEN_WEBUI_TITLE_TASK}]
    )
    session = ChatSession.objects.get(pk=task.pantheon["session_id"])
    assert session.title.startswith("[client task] Generate a concise")
    assert session.pk != plain_session.pk and task.pantheon["credits_burned"]
