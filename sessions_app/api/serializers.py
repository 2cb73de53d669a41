from rest_framework import serializers

from orchestration.modes import manual_tags_ignored
from pantheon.api.fields import LinkField
from pantheon.api.serializers import CostFiguresSerializer, UserUsageTotalsSerializer
from sessions_app.models import ChatSession, Message, SessionSummary, Turn
from usage.models import USAGE_EVENT_FIELDS, LlmCallEvent, PricingVersion


class SessionSerializer(serializers.ModelSerializer):
    room_id = serializers.UUIDField(read_only=True)
    turn_count = serializers.IntegerField(source="last_turn_index", read_only=True)
    url = LinkField("session-detail", room_id="room_id", session_id="pk")
    room_url = LinkField("room-detail", room_id="room_id")
    turns_url = LinkField("turn-list", session_id="pk")
    summaries_url = LinkField("session-summaries", session_id="pk")
    usage_url = LinkField("session-usage", session_id="pk")

    class Meta:
        model = ChatSession
        fields = [
            "id",
            "room_id",
            "title",
            "turn_count",
            "url",
            "room_url",
            "turns_url",
            "summaries_url",
            "usage_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "room_id", "turn_count", "created_at", "updated_at"]
        extra_kwargs = {"title": {"required": False, "allow_blank": True}}


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "agent_key",
            "agent_name",
            "model_alias",
            "mode",
            "content",
            "order",
            "created_at",
        ]
        read_only_fields = fields


class AgentErrorSerializer(serializers.Serializer):
    agent_key = serializers.CharField()
    code = serializers.CharField(
        help_text="Why the agent gave no reply, e.g. `provider_timeout`, `context_budget_exceeded`."
    )


class TurnSerializer(serializers.ModelSerializer):
    session_id = serializers.UUIDField(read_only=True)
    responding_agent_keys = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="The agents that answered, in order."
    )
    agent_errors = AgentErrorSerializer(
        many=True, read_only=True, help_text="The selected agents that did not answer, and why."
    )
    ignored_tags = serializers.SerializerMethodField(
        help_text="Manual mode: the @tags of the input that named no agent of the room (nobody was asked "
        "for them); empty in the other modes."
    )
    messages = MessageSerializer(many=True, read_only=True)
    url = LinkField("turn-detail", session_id="session_id", turn_id="pk")
    session_url = LinkField("session-detail", room_id="session.room_id", session_id="session_id")

    class Meta:
        model = Turn
        fields = [
            "id",
            "session_id",
            "turn_index",
            "mode",
            "status",
            "user_input",
            "assistant_output",
            "responding_agent_keys",
            "agent_errors",
            "ignored_tags",
            "routing_used_fallback",
            "summary_triggered",
            "stop_reason",
            "discussion",
            "messages",
            "url",
            "session_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_ignored_tags(self, turn: Turn) -> list[str]:
        if turn.mode != Turn.Mode.MANUAL:
            return []
        asked = [*turn.responding_agent_keys, *(e.get("agent_key", "") for e in turn.agent_errors)]
        return manual_tags_ignored(user_input=turn.user_input, dispatched_keys=asked)


class TurnCreateSerializer(serializers.Serializer):
    """The shape of a turn request (the form of the browsable API too); its rules — length, NUL
    characters, the mode, the Idempotency-Key — are checked by the turn service, whoever calls it."""

    user_input = serializers.CharField(
        trim_whitespace=False,
        allow_blank=True,
        help_text="Your message; in manual mode, @tag the agents who should answer.",
        style={"base_template": "textarea.html", "rows": 5},
    )
    mode = serializers.ChoiceField(
        choices=Turn.Mode.choices,
        default=Turn.Mode.MANUAL,
        help_text="`manual`: the @tagged agents; `roundtable`: every agent; `orchestrator`: a manager picks.",
    )
    discussion = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text=(
            "Let the agents talk among themselves (docs/discussions.md). Roundtable: "
            '`{"rounds": 2}` — every agent twice, each seeing all before it. Orchestrator: '
            '`{"until": {"max_steps": 6, "stop_phrase": "AGREED", "stop_agent": "critic", '
            '"max_credits": "20", "max_seconds": 120, "combine": "any"}, "allow_repeat": false}` — '
            "the manager picks the next speaker after every step until it answers done or a "
            "condition holds. The answer's `stop_reason` says why it stopped; each step is one of "
            "its messages, e.g. Writer: a draft → Critic: two objections → Writer: the revision → "
            "Critic: AGREED (`stop_phrase`)."
        ),
        style={"base_template": "textarea.html", "rows": 3},
    )
    stream = serializers.BooleanField(
        default=False,
        help_text="Answer with Server-Sent Events as the agents write (as `Accept: text/event-stream` does).",
    )


class TurnFormSerializer(TurnCreateSerializer):
    """The browsable API's turn form: a page shows the whole turn when it is done, so the form offers
    no stream (a browser would show the raw events)."""

    stream = None


class TurnUsageSerializer(CostFiguresSerializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    llm_calls = serializers.IntegerField()


class TurnTimingSerializer(serializers.Serializer):
    """The Server-Timing figures of the request when the turn completed, in milliseconds."""

    llm_ms = serializers.FloatField(help_text="Waiting on the LLM provider.")
    db_ms = serializers.FloatField()
    db_queries = serializers.IntegerField()
    app_ms = serializers.FloatField(help_text="Pantheon's own time: total − llm − db.")
    total_ms = serializers.FloatField()


class TurnCreateResponseSerializer(TurnSerializer):
    usage = TurnUsageSerializer(read_only=True)
    replayed = serializers.BooleanField(read_only=True)
    timing = TurnTimingSerializer(read_only=True, allow_null=True)
    budget = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text='Set when this turn took budgets past their soft limit: `{"soft_limit_reached": '
        "[budget, …]}`, each as in GET /api/v1/budgets (once per budget and period).",
    )

    class Meta(TurnSerializer.Meta):
        fields = [*TurnSerializer.Meta.fields, "usage", "replayed", "timing", "budget"]
        read_only_fields = fields


class TurnPreviewSerializer(serializers.Serializer):
    """A turn's cost preview (docs/budgets.md): nothing is called, held or written."""

    mode = serializers.CharField()
    answered_by = serializers.CharField(help_text="`in order`, or `decided by the manager` (orchestrator).")
    agents = serializers.ListField(
        child=serializers.JSONField(),
        help_text="The candidates: `agent_key`, `name`, `model_alias`, `context_tokens` (its context on the "
        "bare input), `budget_tokens`, `fits`.",
    )
    summary = serializers.JSONField(help_text="`may_trigger`, `model_alias`, `worst_case_credits`.")
    worst_case_credits = serializers.DecimalField(max_digits=18, decimal_places=4)
    parts = serializers.ListField(child=serializers.JSONField(), help_text="What each call counts for.")
    credits_available = serializers.DecimalField(max_digits=18, decimal_places=4)
    budgets = serializers.ListField(
        child=serializers.JSONField(), help_text="Each budget that applies, its share and `would_refuse`."
    )
    refusal = serializers.JSONField(
        allow_null=True,
        help_text="null, or what the turn would answer: `context_budget_exceeded`, `budget_exceeded`, "
        "`insufficient_credits` with their fields.",
    )


class SummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = SessionSummary
        fields = [
            "id",
            "covers_through_turn_index",
            "summary_text",
            "key_facts",
            "decisions",
            "open_questions",
            "action_items",
            "summary_used_fallback",
            "extraction_used_fallback",
            "created_at",
        ]
        read_only_fields = fields


class PricingVersionRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = PricingVersion
        fields = ["id", "name"]
        read_only_fields = fields


class UsageEventSerializer(serializers.ModelSerializer):
    pricing_version = PricingVersionRefSerializer(
        read_only=True, allow_null=True, help_text="The price list the call was priced with."
    )
    turn_url = LinkField("turn-detail", allow_null=True, session_id="session_id", turn_id="turn_id")

    class Meta:
        model = LlmCallEvent
        fields = ["id", "created_at", "turn_url", *USAGE_EVENT_FIELDS, "pricing_version"]
        read_only_fields = fields


class UsageTotalsSerializer(UserUsageTotalsSerializer):
    """A session's totals: the figures of /auth/me, for the session's calls."""
