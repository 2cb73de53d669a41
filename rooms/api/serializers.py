from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rooms.models import AGENT_KEY_PATTERN, Agent, Room


class AgentSerializer(serializers.ModelSerializer):
    agent_key = serializers.RegexField(
        AGENT_KEY_PATTERN,
        max_length=32,
        error_messages={
            "invalid": (
                "An agent key starts with a lowercase letter and has at most 32 of a-z, 0-9, '_' and '-'."
            )
        },
    )
    name = serializers.CharField(max_length=100, allow_blank=False, trim_whitespace=True)
    model_alias = serializers.CharField(max_length=64)
    role_prompt = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
    position = serializers.IntegerField(min_value=0, max_value=10_000, required=False)

    class Meta:
        model = Agent
        fields = ["agent_key", "name", "model_alias", "role_prompt", "position", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class AgentUpdateSerializer(AgentSerializer):
    class Meta(AgentSerializer.Meta):
        extra_kwargs = {f: {"required": False} for f in ["agent_key", "name", "model_alias"]}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in ("agent_key", "name", "model_alias", "role_prompt"):
            self.fields[field].required = False
        self.fields["role_prompt"].default = serializers.empty


class RoomSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=200, allow_blank=False, trim_whitespace=True)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    agents = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = ["id", "name", "description", "agents", "created_at", "updated_at"]
        read_only_fields = ["id", "agents", "created_at", "updated_at"]

    @extend_schema_field(AgentSerializer(many=True))
    def get_agents(self, room: Room) -> list[dict]:
        agents = [a for a in room.agents.all() if a.deleted_at is None]
        return AgentSerializer(sorted(agents, key=lambda a: (a.position, a.pk)), many=True).data


class RoomUpdateSerializer(RoomSerializer):
    name = serializers.CharField(max_length=200, allow_blank=False, trim_whitespace=True, required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
