"""The OpenAI chat completions wire format: what a client sends, and (for the schema) what it gets.

Only what a room can honour is read: ``model``, ``messages``, ``stream``, ``stream_options`` and
``metadata.session_id``. Sampling parameters (``temperature``, ``max_tokens`` …) and ``user`` are
accepted and ignored (each agent's own settings apply); ``n`` above 1 and non-text content are
refused.
"""

import json

from rest_framework import serializers

from openai_compat.fingerprint import TranscriptMessage
from pantheon.api.serializers import CostFiguresSerializer

# Roles a client may send; only ``user`` and ``assistant`` take part in a conversation.
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='Text, or a list of `{"type": "text", "text": …}` parts (joined by line breaks).',
    )
    name = serializers.CharField(required=False, allow_blank=True, help_text="Ignored.")

    def validate_content(self, value) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                for p in value
            ):
                raise serializers.ValidationError("Only text content is supported.")
            value = "\n".join(p.get("text") for p in value)
        # DRF's own checks of any text: a string, no NUL, no lone surrogate.
        return serializers.CharField(allow_blank=True, trim_whitespace=False).run_validation(value)

    def to_transcript(self, data: dict) -> TranscriptMessage:
        return TranscriptMessage(role=data["role"], content=data.get("content") or "")


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(
        default=False, help_text="Send the turn's token usage in a last chunk before `[DONE]`."
    )


class ChatCompletionRequestSerializer(serializers.Serializer):
    model = serializers.CharField(
        help_text="A room: `room-<room_id>` (manual when the message @tags an agent, else "
        "orchestrator), or `room-<room_id>:roundtable`, `:orchestrator`, `:manual`."
    )
    messages = ChatMessageSerializer(
        many=True,
        allow_empty=False,
        help_text="The conversation; the last message, the user's, is the turn's input. System "
        "messages are ignored (the agents keep their own role prompts).",
    )
    stream = serializers.BooleanField(default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    metadata = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="`session_id`: run the turn in this session of the room (as `X-Pantheon-Session`); "
        "`discussion`: a discussion as a JSON string (docs/discussions.md); other keys are ignored.",
    )
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1)

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

    def discussion(self) -> dict | None:
        return (self.validated_data.get("metadata") or {}).get("discussion")

    def validated_messages(self) -> list[TranscriptMessage]:
        child = self.fields["messages"].child
        return [child.to_transcript(m) for m in self.validated_data["messages"]]

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
