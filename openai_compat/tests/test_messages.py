"""The ``messages`` validator (plain Python, ``openai_compat.api.messages``) refuses exactly what the
list of DRF message serializers it replaced refused, with the same detail — hence the same code,
``param`` and message in the OpenAI error shape — and reads what it accepted as the same text.

``ReferenceChatMessageSerializer`` is that serializer as it was, kept here as the reference."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from openai_compat.api.errors import first_problem, openai_error_body
from openai_compat.api.messages import ROLES, TEXT_PARTS
from openai_compat.api.serializers import ChatCompletionRequestSerializer, ChatMessageSerializer
from openai_compat.fingerprint import TranscriptMessage
from pantheon.api.exceptions import exception_handler


def _reference_part_text(part) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in TEXT_PARTS:
        shown = f"{kind!r}" if isinstance(kind, str) else "missing"
        raise serializers.ValidationError(
            {
                "type": [
                    f"part type {shown} is not supported: a room reads text only ({', '.join(TEXT_PARTS)})."
                ]
            }
        )
    key = TEXT_PARTS[kind]
    if not isinstance(part.get(key), str):
        raise serializers.ValidationError({key: [f"a {kind!r} part needs its {key!r} as a string."]})
    return part[key]


class ReferenceChatMessageSerializer(ChatMessageSerializer):
    def validate_content(self, value) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            texts, problems = [], {}
            for position, part in enumerate(value):
                try:
                    texts.append(_reference_part_text(part))
                except serializers.ValidationError as exc:
                    problems[str(position)] = exc.detail
                    break
            if problems:
                raise serializers.ValidationError(problems)
            value = "\n".join(texts)
        return serializers.CharField(allow_blank=True, trim_whitespace=False).run_validation(value)

    def to_transcript(self, data: dict) -> TranscriptMessage:
        return TranscriptMessage(role=data["role"], content=data.get("content") or "")


class ReferenceRequestSerializer(ChatCompletionRequestSerializer):
    messages = ReferenceChatMessageSerializer(many=True, allow_empty=False)

    def validated_messages(self) -> list[TranscriptMessage]:
        child = self.fields["messages"].child
        return [child.to_transcript(m) for m in self.validated_data["messages"]]


MISSING = object()


def first_failing_message(errors: dict) -> dict:
    """The reference's errors with only the first failing message's (all it reports now)."""
    errors = dict(errors)
    problems = errors.get("messages")
    if isinstance(problems, dict) and all(isinstance(index, int) for index in problems):
        first = min(problems)
        errors["messages"] = {first: problems[first]}
    return errors


def both(messages):
    """The new and the reference serializer over a body with these ``messages``: (errors, messages)
    of the new one, after checking that they agree."""
    body = {"model": "room-x"} if messages is MISSING else {"model": "room-x", "messages": messages}
    new, reference = ChatCompletionRequestSerializer(data=body), ReferenceRequestSerializer(data=body)
    assert new.is_valid() == reference.is_valid()
    expected = first_failing_message(reference.errors)
    assert dict(new.errors) == expected  # ErrorDetail compares its code too
    assert repr(dict(new.errors)) == repr(expected)  # keys: 0 and "0" are not the same
    if reference.errors:
        return new.errors, None
    assert new.validated_messages() == reference.validated_messages()
    return None, new.validated_messages()


def openai_param(errors) -> tuple[str | None, str]:
    """The ``param`` and message a client gets for these errors (the endpoint's own path)."""
    response = exception_handler(serializers.ValidationError(errors), {})
    error = openai_error_body(response.data, response.status_code)["error"]
    assert error["code"] == "invalid" and response.status_code == 400
    return error["param"], error["message"]


TEXT = {"type": "text", "text": "hi"}
REFUSED = [
    (MISSING, "messages", "This field is required."),
    (None, "messages", "This field may not be null."),
    ([], "messages", "This list may not be empty."),
    ({"role": "user", "content": "hi"}, "messages", 'Expected a list of items but got type "dict".'),
    ("hi", "messages", "Expected a list"),
    ([None], "messages.[0]", "This field may not be null."),
    (["hi"], "messages.[0]", "Invalid data. Expected a dictionary, but got str."),
    ([[TEXT]], "messages.[0]", "Invalid data. Expected a dictionary, but got list."),
    ([{"content": "hi"}], "messages.[0].role", "This field is required."),
    ([{"role": None}], "messages.[0].role", "This field may not be null."),
    ([{"role": "wizard"}], "messages.[0].role", '"wizard" is not a valid choice.'),
    ([{"role": ""}], "messages.[0].role", '"" is not a valid choice.'),
    ([{"role": "User"}], "messages.[0].role", '"User" is not a valid choice.'),
    ([{"role": ["user"]}], "messages.[0].role", "is not a valid choice."),
    ([{"role": 1}], "messages.[0].role", '"1" is not a valid choice.'),
    ([{"role": "user", "content": True}], "messages.[0].content", "Not a valid string."),
    ([{"role": "user", "content": {"text": "hi"}}], "messages.[0].content", "Not a valid string."),
    ([{"role": "user", "content": "a\x00b"}], "messages.[0].content", "Null characters are not allowed."),
    (
        [{"role": "user", "content": "a\ud800"}],
        "messages.[0].content",
        "Surrogate characters are not allowed: U+D800.",
    ),
    ([{"role": "user", "content": "é\udfffb\ud800"}], "messages.[0].content", "U+DFFF."),
    ([{"role": "user", "content": "\ud800\x00"}], "messages.[0].content", "Null characters are not allowed."),
    ([{"role": "user", "content": [TEXT, {"type": "text", "text": "\x00"}]}], "messages.[0].content", "Null"),
    ([{"role": "user", "content": [TEXT, "hi"]}], "messages.[0].content.[1].type", "part type missing"),
    ([{"role": "user", "content": [None]}], "messages.[0].content.[0].type", "part type missing"),
    ([{"role": "user", "content": [{"text": "hi"}]}], "messages.[0].content.[0].type", "part type missing"),
    ([{"role": "user", "content": [{"type": 7}]}], "messages.[0].content.[0].type", "part type missing"),
    (
        [{"role": "user", "content": [{"type": "image_url", "image_url": {}}, {"type": "video"}]}],
        "messages.[0].content.[0].type",
        "part type 'image_url' is not supported",
    ),
    (
        [{"role": "user", "content": [{"type": "text"}]}],
        "messages.[0].content.[0].text",
        "'text' as a string",
    ),
    (
        [{"role": "assistant", "content": [{"type": "refusal", "text": "no"}]}],
        "messages.[0].content.[0].refusal",
        "a 'refusal' part needs its 'refusal' as a string.",
    ),
    ([{"role": "user", "name": "a\x00"}], "messages.[0].name", "Null characters are not allowed."),
    ([{"role": "user", "name": " \udc80 "}], "messages.[0].name", "U+DC80"),
    ([{"role": "user", "name": ["me"]}], "messages.[0].name", "Not a valid string."),
    ([{"role": "user", "name": False}], "messages.[0].name", "Not a valid string."),
    # Several problems: every field of the first failing message; param names the first.
    (
        [{"role": "x", "content": 1.5, "name": {}}, {"role": "user"}, {"role": "user", "content": [7]}],
        "messages.[0].role",
        '"x" is not a valid choice.',
    ),
    ([{"role": "user"}, {"content": True, "name": "\x00"}], "messages.[1].role", "required"),
    ([{"role": "user"}] * 3 + [{"role": "user", "content": "\x00"}], "messages.[3].content", "Null"),
]


@pytest.mark.parametrize(("messages", "param", "message"), REFUSED)
def test_every_refusal_is_the_reference_serializers(messages, param, message):
    errors, _ = both(messages)
    assert errors is not None
    got_param, got_message = openai_param(errors)
    assert got_param == param and message in got_message and got_message.startswith(param + ": ")


ACCEPTED = [
    ([{"role": "user"}], [TranscriptMessage("user", "")]),
    ([{"role": "user", "content": None, "name": None}], [TranscriptMessage("user", "")]),
    ([{"role": "user", "content": "", "name": ""}], [TranscriptMessage("user", "")]),
    ([{"role": "user", "content": 7, "name": 3}], [TranscriptMessage("user", "7")]),
    ([{"role": "user", "content": -1.5}], [TranscriptMessage("user", "-1.5")]),
    ([{"role": "user", "content": "  a\r\nb  ", "name": "  "}], [TranscriptMessage("user", "  a\r\nb  ")]),
    ([{"role": "user", "content": "λόγος 🙂"}], [TranscriptMessage("user", "λόγος 🙂")]),
    (
        [{"role": "tool", "content": "{}", "tool_call_id": "x", "extra": [None]}],
        [TranscriptMessage("tool", "{}")],
    ),
    ([{"role": "user", "content": []}], [TranscriptMessage("user", "")]),
    (
        [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "output_text", "text": "b", "annotations": []},
                    {"type": "refusal", "refusal": "c"},
                    {"type": "input_text", "text": ""},
                ],
            }
        ],
        [TranscriptMessage("assistant", "a\nb\nc\n")],
    ),
    (
        [{"role": r, "content": r} for r in ROLES],
        [TranscriptMessage(r, r) for r in ROLES],
    ),
]


@pytest.mark.parametrize(("messages", "expected"), ACCEPTED)
def test_what_the_reference_accepted_reads_as_the_same_text(messages, expected):
    assert both(messages) == (None, expected)


def test_only_the_first_failing_message_is_reported():
    messages = [{"role": "user"}, {"role": "x", "content": True}, {"role": "y"}] + [{}] * 1000
    serializer = ChatCompletionRequestSerializer(data={"model": "room-x", "messages": messages})
    assert not serializer.is_valid()
    assert serializer.errors["messages"] == {
        1: {"role": ['"x" is not a valid choice.'], "content": ["Not a valid string."]}
    }


def test_a_part_type_that_is_not_a_string_is_refused_not_an_error():
    """``{"type": ["text"]}`` was an unhashable lookup in the reference: a 500. It is a 400 now."""
    body = {"model": "room-x", "messages": [{"role": "user", "content": [{"type": ["text"], "text": "a"}]}]}
    serializer = ChatCompletionRequestSerializer(data=body)
    assert not serializer.is_valid()
    assert openai_param(serializer.errors)[0] == "messages.[0].content.[0].type"


# --- random messages: both serializers agree on every one -------------------------------------------

CHARACTERS = st.sampled_from(["a", "B", " ", "\n", "\r\n", "\x00", "\ud800", "\udfff", "é", "🙂", "@"])
TEXTS = st.lists(CHARACTERS, max_size=6).map("".join)
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2) | TEXTS
# No key spells "type": a part whose type is unhashable made the reference fail (see above).
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=2),
    max_leaves=4,
)
KIND = st.sampled_from([*TEXT_PARTS, "image_url", "", "Text"]) | st.none() | st.integers(0, 2)
PART = (
    st.fixed_dictionaries({}, optional={"type": KIND, "text": JSON, "refusal": JSON, "image_url": JSON})
    | SCALARS
    | st.just({"type": "text", "text": "fine"})
)
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from([*ROLES, "wizard", "", "USER"]) | JSON,
        "content": TEXTS | JSON | st.lists(PART, max_size=3),
        "name": TEXTS | JSON,
        "tool_calls": JSON,
    },
) | st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": TEXTS | st.lists(PART, max_size=3)})
MESSAGES = st.lists(MESSAGE | SCALARS, max_size=4) | JSON | st.just(MISSING)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_random_messages_are_judged_as_the_reference_judged_them(messages):
    errors, _ = both(messages)
    if errors is not None:
        assert first_problem(errors) is not None
