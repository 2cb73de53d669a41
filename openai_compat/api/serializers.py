"""The OpenAI chat completions wire format: what a client sends, and (for the schema) what it gets.

Only what a room can honour is read: ``model``, ``messages``, ``stream``, ``stream_options`` and
``metadata.session_id``. A parameter that would change what the client expects back and that a
room cannot honour is refused with 400 naming it (``REFUSED``): forced tool calls, a response format
other than text, several choices, log probabilities, audio. Everything else (sampling parameters,
``max_tokens``, ``stop``, ``user``, tools the model may leave unused …) is accepted and ignored:
each agent keeps its own model and settings. docs/openai-compatible.md lists every parameter.
"""

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from openai_compat.api.messages import ROLES, chat_messages_validate
from openai_compat.fingerprint import TranscriptMessage
from pantheon.api.parsers import collector_paused
from pantheon.api.serializers import CostFiguresSerializer


# One message, for the schema only (a docstring would be its description there):
# ``ChatMessagesField`` validates the whole list in plain Python (``openai_compat.api.messages``).
class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='Text, or a list of `{"type": "text", "text": …}` (or `refusal`) parts, joined by line '
        "breaks; any other part type is refused, naming the part.",
    )
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Ignored.")


@extend_schema_field(ChatMessageSerializer(many=True, allow_empty=False))
class ChatMessagesField(serializers.Field):
    """The conversation, as ``TranscriptMessage``s; refusals as a list of ``ChatMessageSerializer``
    would give them (``messages.[i].content`` …)."""

    def to_internal_value(self, data) -> list[TranscriptMessage]:
        with collector_paused():  # up to a million messages made at once
            return chat_messages_validate(data)


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(
        default=False, help_text="Send the turn's token usage in a last chunk before `[DONE]`."
    )


class ChatCompletionRequestSerializer(serializers.Serializer):
    model = serializers.CharField(
        help_text="A room: `room-<room_id>` (manual when the message @tags an agent, else "
        "orchestrator), or `room-<room_id>:roundtable`, `:orchestrator`, `:manual`."
    )
    messages = ChatMessagesField(
        help_text="The conversation; the last message, the user's, is the turn's input. System "
        "messages are ignored (the agents keep their own role prompts).",
    )
    stream = serializers.BooleanField(default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    metadata = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="`session_id`: run the turn in this session of the room (as `X-Pantheon-Session`); "
        "`pantheon_preview: true`: answer the turn's cost preview instead of running it (as "
        "`X-Pantheon-Preview: true`); `discussion`: a discussion as a JSON string "
        "(docs/discussions.md); other keys are ignored.",
    )
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    tools = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        allow_null=True,
        help_text="Ignored: agents call no tools.",
    )
    tool_choice = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="`none` or `auto` (tools ignored); `required` or a named tool: 400.",
    )
    functions = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    function_call = serializers.JSONField(required=False, allow_null=True, help_text="As `tool_choice`.")
    response_format = serializers.JSONField(
        required=False, allow_null=True, help_text='`{"type": "text"}` only; JSON modes: 400.'
    )
    logprobs = serializers.BooleanField(required=False, allow_null=True, help_text="`true`: 400.")
    top_logprobs = serializers.IntegerField(required=False, allow_null=True, help_text="Above 0: 400.")
    modalities = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
    audio = serializers.JSONField(required=False, allow_null=True, help_text="Set: 400 (text only).")

    def validate_n(self, value: int | None) -> int | None:
        if value is not None and value > 1:
            raise serializers.ValidationError("a room gives one answer per turn: n must be 1.")
        return value

    def validate_tool_choice(self, value):
        if value not in (None, "none", "auto"):
            raise serializers.ValidationError(
                "a room's agents call no tools, so a required or named tool choice cannot be honoured "
                "(tools offered with tool_choice none or auto are ignored)."
            )
        return value

    def validate_function_call(self, value):
        if value not in (None, "none", "auto"):
            raise serializers.ValidationError("a room's agents call no functions: use none or auto.")
        return value

    def validate_response_format(self, value):
        kind = value.get("type") if isinstance(value, dict) else value
        if value is not None and kind != "text":
            raise serializers.ValidationError(
                'a room answers in prose: only {"type": "text"} is supported (no JSON mode or schema).'
            )
        return value

    def validate_logprobs(self, value: bool | None) -> bool | None:
        if value:
            raise serializers.ValidationError("a room cannot return log probabilities.")
        return value

    def validate_top_logprobs(self, value: int | None) -> int | None:
        if value:
            raise serializers.ValidationError("a room cannot return log probabilities.")
        return value

    def validate_modalities(self, value: list[str] | None) -> list[str] | None:
        if value and set(value) != {"text"}:
            raise serializers.ValidationError("a room answers in text only.")
        return value

    def validate_audio(self, value):
        if value is not None:
            raise serializers.ValidationError("a room answers in text only.")
        return value

    def validate_metadata(self, value: dict | None) -> dict | None:
        session_id = (value or {}).get("session_id")
        if session_id is not None and not isinstance(session_id, str):
            raise serializers.ValidationError("session_id must be a string.")
        discussion = (value or {}).get("discussion")
        if discussion is not None:
            try:
                value = {
                    **value,
                    "discussion": json.loads(discussion) if isinstance(discussion, str) else discussion,
                }
            except ValueError as exc:
                raise serializers.ValidationError("discussion must be a JSON object.") from exc
        return value

    def preview_asked(self) -> bool:
        return (self.validated_data.get("metadata") or {}).get("pantheon_preview") is True

    def discussion(self) -> dict | None:
        return (self.validated_data.get("metadata") or {}).get("discussion")

    def validated_messages(self) -> list[TranscriptMessage]:
        return self.validated_data["messages"]

    def session_id(self) -> str | None:
        return (self.validated_data.get("metadata") or {}).get("session_id") or None

    def include_usage(self) -> bool:
        return bool((self.validated_data.get("stream_options") or {}).get("include_usage"))


# --- responses (for the schema; the views build the bodies) -------------------------------------


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="`invalid_request_error`, `not_found_error`, `server_error` …")
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(help_text="Pantheon's error code (docs/api-errors.md).")


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorDetailSerializer()


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()


class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIModelSerializer(many=True)


class CompletionMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(help_text="The agents' replies as `Name: reply` paragraphs.")


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = CompletionMessageSerializer()
    finish_reason = serializers.CharField()


class CompletionUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class PantheonTurnSerializer(CostFiguresSerializer):
    """The extension field ``pantheon``: the turn in Pantheon, its session and its cost."""

    session_id = serializers.UUIDField()
    forked_from_session_id = serializers.UUIDField(
        allow_null=True, help_text="Set when the history matched an earlier turn of that session."
    )
    turn_id = serializers.UUIDField()
    turn_index = serializers.IntegerField()
    mode = serializers.CharField()
    status = serializers.CharField(help_text="`completed` or `partial` (some agents failed).")
    responding_agent_keys = serializers.ListField(child=serializers.CharField())
    agent_errors = serializers.ListField(child=serializers.DictField())
    replayed = serializers.BooleanField(help_text="An `Idempotency-Key` replay: nothing ran again.")
    llm_calls = serializers.IntegerField()
    credits_unbilled = serializers.DecimalField(max_digits=18, decimal_places=4)


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = CompletionChoiceSerializer(many=True)
    usage = CompletionUsageSerializer()
    pantheon = PantheonTurnSerializer()


# --- API keys (under /api/v1/, the native error shape) --------------------------------------------


class ApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100, help_text="What the key is for, e.g. `Open WebUI`.")
    prefix = serializers.CharField(read_only=True, help_text="The key's first characters.")
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key itself: shown this once, never again.")
