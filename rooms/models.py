import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

AGENT_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
agent_key_validator = RegexValidator(
    AGENT_KEY_PATTERN,
    "An agent key starts with a lowercase letter and has at most 32 of a-z, 0-9, '_' and '-'.",
)


class LiveQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleted_at__isnull=True)


class Room(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rooms")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LiveQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="agents")
    agent_key = models.CharField(max_length=32, validators=[agent_key_validator])
    name = models.CharField(max_length=100)
    model_alias = models.CharField(max_length=64)
    role_prompt = models.TextField(blank=True, max_length=20000)
    position = models.PositiveIntegerField(default=0)
    # The agent's own context window; None: CONTEXT_WINDOW_TOKENS (see orchestration.context.Budget).
    context_window_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LiveQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "agent_key"],
                condition=Q(deleted_at__isnull=True),
                name="unique_live_agent_key_per_room",
            )
        ]

    def __str__(self) -> str:
        return f"@{self.agent_key} ({self.name})"
