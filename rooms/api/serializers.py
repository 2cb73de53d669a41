"""Rooms and agents on the wire.

Only the fields declared writable here can be set by a client: ids, owner, room, timestamps and
``deleted_at`` are read-only or absent, and unknown keys in a body are ignored. PATCH uses the same
serializers with ``partial=True`` (drf-spectacular documents that as the ``Patched…`` schemas).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pantheon.api.fields import LinkField
from rooms.models import AGENT_KEY_PATTERN, Agent, Room
from rooms.services import AGENT_KEY_RULE
from usage.selectors import catalog_aliases_active


@extend_schema_field(OpenApiTypes.STR)
class CatalogAliasField(serializers.ChoiceField):
    """An active alias of the model catalog: a choice in the browsable API's form, and a refusal
    naming the input beside the other fields' (the catalog is read when a value is checked or the
    form is drawn, never at import nor for the schema)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "error_messages",
            {"invalid_choice": "'{input}' is not an active catalog model (see GET /api/v1/models)."},
        )
        super().__init__(choices=[], **kwargs)

    def bind(self, field_name: str, parent) -> None:
        super().bind(field_name, parent)
        self._catalog_read = False

    def _catalog(self) -> None:
        """Read the catalog the first time a value is checked or the form's options are listed —
        not when the serializer is only described (the schema, which needs no database)."""
        if not getattr(self, "_catalog_read", False):
            self.choices = catalog_aliases_active()
            self._catalog_read = True

    def to_internal_value(self, data):
        self._catalog()
        return super().to_internal_value(data)

    def iter_options(self):
        self._catalog()
        return super().iter_options()


class AgentSerializer(serializers.ModelSerializer):
    agent_key = serializers.RegexField(
        AGENT_KEY_PATTERN, max_length=32, error_messages={"invalid": AGENT_KEY_RULE}
    )
    name = serializers.CharField(max_length=100)
    model_alias = CatalogAliasField(help_text="An active alias of GET /api/v1/models.")
    role_prompt = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    position = serializers.IntegerField(
        min_value=0,
        max_value=10_000,
        required=False,
        help_text="Order in the room (roundtable answers in it). Omitted: after the last agent.",
    )
    url = LinkField("agent-detail", room_id="room_id", agent_key="agent_key")
    room_url = LinkField("room-detail", room_id="room_id")

    context_window_tokens = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text=(
            "The agent's own context window in tokens, at most the lower of its model's window and the "
            "server's ceiling (CONTEXT_WINDOW_MAX_TOKENS). Null: the server's default window."
        ),
    )

    class Meta:
        model = Agent
        fields = [
            "agent_key",
            "name",
            "model_alias",
            "role_prompt",
            "position",
            "context_window_tokens",
            "url",
            "room_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class RoomSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    agents = serializers.SerializerMethodField(help_text="The room's live agents, by position.")
    url = LinkField("room-detail", room_id="pk")
    agents_url = LinkField("agent-list", room_id="pk")
    sessions_url = LinkField("session-list", room_id="pk")

    class Meta:
        model = Room
        fields = [
            "id",
            "name",
            "description",
            "agents",
            "url",
            "agents_url",
            "sessions_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    @extend_schema_field(AgentSerializer(many=True))
    def get_agents(self, room: Room) -> list[dict]:
        # Rooms come from rooms.selectors with their live agents prefetched in order; filtering
        # again here keeps a room fetched any other way from showing deleted agents.
        agents = [a for a in room.agents.all() if a.deleted_at is None]
        ordered = sorted(agents, key=lambda a: (a.position, a.pk))
        return AgentSerializer(ordered, many=True, context=self.context).data
