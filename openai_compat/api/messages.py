"""The ``messages`` of a chat completion request, validated in plain Python over the parsed JSON.

A chat client resends the whole conversation with every message: a body of
``OPENAI_REQUEST_MAX_BYTES`` holds ~100,000 messages. Validated as a DRF list of per-message
serializers, each message cost three field objects' validation, a JSON dump of its content and a
per-character surrogate scan in Python — seconds of CPU for one request, during which a gevent
worker serves nothing else. Here a message that is valid costs a few dictionary lookups and C-speed
string checks; only a message that fails goes through DRF's own fields, so every refusal keeps its
exact detail (``param`` ``messages.[i].role``, ``messages.[i].content.[j].type`` …, the same
messages and codes; ``openai_compat/tests/test_messages.py`` holds the old serializer as the
reference the rules are checked against). Only the first failing message is reported.

The rules, per message: ``role`` one of ``ROLES``; ``content`` absent, null, a string (a number is
read as its text), or a list of text parts (``TEXT_PARTS``) joined by line breaks; ``name`` absent,
null or a string (ignored); no NUL character and no lone surrogate in either text; other keys ignored.
"""

import re
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from openai_compat.fingerprint import TranscriptMessage

# Roles a client may send; only ``user`` and ``assistant`` take part in a conversation.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")

# Content part types read as text, and the key holding their text. A refusal is what the model said.
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}

_ROLE_SET = frozenset(ROLES)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _SurrogatesRefused(ProhibitSurrogateCharactersValidator):
    """DRF's check with its message and code, by a regular expression instead of a Python loop over
    every character."""

    def __call__(self, value) -> None:
        text = str(value)
        if not text.isascii() and (found := _LONE_SURROGATE.search(text)) is not None:
            raise serializers.ValidationError(
                self.message.format(code_point=ord(found.group())), code=self.code
            )


def _checked_text_field(**kwargs) -> serializers.CharField:
    """DRF's ``CharField``, its surrogate check ``_SurrogatesRefused``."""
    field = serializers.CharField(**kwargs)
    field.validators = [
        _SurrogatesRefused() if isinstance(v, ProhibitSurrogateCharactersValidator) else v
        for v in field.validators
    ]
    return field


# DRF's fields, asked only about a value the fast checks did not pass: they say what is wrong.
_MESSAGES_FIELD = serializers.ListSerializer(child=serializers.Serializer(), allow_empty=False)
_MESSAGE_FIELD = serializers.Serializer()
_ROLE_FIELD = serializers.ChoiceField(choices=ROLES)
_CONTENT_FIELD = _checked_text_field(allow_blank=True, trim_whitespace=False)
_NAME_FIELD = _checked_text_field(required=False, allow_blank=True, allow_null=True)


def _clean(text: str) -> bool:
    """Whether DRF's ``CharField`` would take ``text`` as it is: no NUL, no lone surrogate."""
    return "\x00" not in text and (text.isascii() or _LONE_SURROGATE.search(text) is None)


def _part_text(part: Any) -> str:
    """A content part's text; a ValidationError naming its ``type`` (or ``text``) otherwise (the
    rule; ``_content`` inlines its passing case)."""
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str) or kind not in TEXT_PARTS:
        shown = f"{kind!r}" if isinstance(kind, str) else "missing"
        raise serializers.ValidationError(
            {
                "type": [
                    f"part type {shown} is not supported: a room reads text only ({', '.join(TEXT_PARTS)})."
                ]
            }
        )
    key = TEXT_PARTS[kind]
    text = part.get(key)
    if not isinstance(text, str):
        raise serializers.ValidationError({key: [f"a {kind!r} part needs its {key!r} as a string."]})
    return text


def _content(value: Any) -> str:
    """A message's content as text (``ValidationError`` with DRF's detail otherwise)."""
    if value is None or value is empty:
        return ""
    if isinstance(value, list):
        texts = []
        for position, part in enumerate(value):
            kind = part.get("type") if type(part) is dict else None
            key = TEXT_PARTS.get(kind) if type(kind) is str else None
            if key is not None and type(text := part.get(key)) is str:
                texts.append(text)
                continue
            try:
                texts.append(_part_text(part))  # the rule itself: it names what is wrong
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({str(position): exc.detail}) from None
        value = "\n".join(texts)
    if type(value) is str and _clean(value):
        return value
    return _CONTENT_FIELD.run_validation(value)  # a number as its text, or the refusal


def _message(item: Any) -> TranscriptMessage:
    """One message, or a ValidationError whose detail is DRF's for it (field by field, in order).

    The common shape — a role, text or null content, no name or a clean one — is taken at once;
    anything else goes through every rule (``_message_checked``)."""
    if type(item) is dict:
        role, content, name = item.get("role"), item.get("content"), item.get("name")
        if (
            type(role) is str
            and role in _ROLE_SET
            and (name is None or (type(name) is str and _clean(name)))
            and (content is None or (type(content) is str and _clean(content)))
        ):
            return TranscriptMessage(role, content or "")
    return _message_checked(item)


def _message_checked(item: Any) -> TranscriptMessage:
    if type(item) is not dict:
        _MESSAGE_FIELD.run_validation(item)  # not an object: raises
    role, content, name = item.get("role", empty), item.get("content", empty), item.get("name", empty)
    problems = {}
    if type(role) is not str or role not in _ROLE_SET:
        try:
            role = _ROLE_FIELD.run_validation(role)
        except serializers.ValidationError as exc:
            problems["role"] = exc.detail
    try:
        text = _content(content)
    except serializers.ValidationError as exc:
        problems["content"] = exc.detail
    if name is not empty and name is not None and not (type(name) is str and _clean(name)):
        try:
            _NAME_FIELD.run_validation(name)
        except serializers.ValidationError as exc:
            problems["name"] = exc.detail
    if problems:
        raise serializers.ValidationError(problems)
    return TranscriptMessage(role, text)


def chat_messages_validate(data: Any) -> list[TranscriptMessage]:
    """The request's ``messages`` (present and not null: the field checked that) as transcript
    messages; else a ValidationError with DRF's detail for a list of message serializers, for the
    first message that fails: ``{index: {field: [messages]}}``. Only the first: a body of a million
    bad messages would otherwise be a million errors to build and send back."""
    if type(data) is not list or not data:
        _MESSAGES_FIELD.run_validation(data)  # not a list, or empty: raises
    messages = []
    for index, item in enumerate(data):
        try:
            messages.append(_message(item))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({index: exc.detail}) from None
    return messages
