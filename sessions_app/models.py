import uuid

from django.db import models
from django.db.models import Q

from rooms.models import LiveQuerySet, Room


class ChatSession(models.Model):
    """A conversation in a room. Also the sequencing point of its turns (see ``claim_*``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="sessions")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Sequencing: the index of the last committed turn, and the claim of the turn in flight.
    last_turn_index = models.PositiveIntegerField(default=0)
    claim_token = models.UUIDField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # The highest turn index a summary has been asked for (summaries cover up to an index).
    summary_due_through = models.PositiveIntegerField(null=True, blank=True)
    # The claim of the summary being made: one at a time per session (orchestration.summary_claims).
    summary_claim_token = models.UUIDField(null=True, blank=True, editable=False)
    summary_claim_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The fingerprint of the transcript so far as an OpenAI-compatible client resends it (a hash
    # chain, openai_compat.fingerprint): how a resent history finds its session.
    transcript_fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)

    objects = LiveQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        db_table = "sessions_app_session"
        indexes = [models.Index(fields=["transcript_fingerprint"], name="session_transcript_fp")]
        verbose_name = "session"

    def __str__(self) -> str:
        return self.title or str(self.id)


class Turn(models.Model):
    class Mode(models.TextChoices):
        MANUAL = "manual"
        ROUNDTABLE = "roundtable"
        ORCHESTRATOR = "orchestrator"

    class Status(models.TextChoices):
        COMPLETED = "completed"
        PARTIAL = "partial"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="turns")
    turn_index = models.PositiveIntegerField()
    mode = models.CharField(max_length=20, choices=Mode.choices)
    user_input = models.TextField()
    assistant_output = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    responding_agent_keys = models.JSONField(default=list, blank=True)
    agent_errors = models.JSONField(default=list, blank=True)
    routing_used_fallback = models.BooleanField(default=False)
    summary_triggered = models.BooleanField(default=False)
    # A discussion (docs/discussions.md): why it stopped ("" for a plain turn), and its record — what
    # was asked and each step with the manager's decision as it came.
    stop_reason = models.CharField(max_length=32, blank=True, default="")
    discussion = models.JSONField(null=True, blank=True)
    # Tokens of user_input + assistant_output as they appear in later context (cached for pruning).
    context_tokens = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # The transcript's fingerprint through this turn ("" until recorded; failed turns never get one).
    transcript_fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session", "turn_index"]
        indexes = [
            models.Index(fields=["transcript_fingerprint"], name="turn_transcript_fp"),
            # The history window of a turn's context (newest first, with each turn's cached token
            # count and status), read from the index alone: no table access for a long session's
            # turns that do not make it into the context.
            models.Index(
                fields=["session", "-turn_index"],
                include=["context_tokens", "status"],
                name="turn_history_window",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["session", "turn_index"], name="unique_turn_index_per_session"),
            models.UniqueConstraint(
                fields=["session", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="unique_idempotency_key_per_session",
            ),
        ]

    def __str__(self) -> str:
        """``Turn 3 of First session`` (the session is read: select it with the turns listed)."""
        return f"Turn {self.turn_index} of {self.session.title or 'an untitled session'}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    turn = models.ForeignKey(Turn, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages")
    role = models.CharField(max_length=20, choices=Role.choices)
    agent_key = models.CharField(max_length=32, blank=True)
    agent_name = models.CharField(max_length=100, blank=True)
    model_alias = models.CharField(max_length=64, blank=True)
    mode = models.CharField(max_length=20, blank=True)
    content = models.TextField()
    order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["turn_id", "order"]

    def __str__(self) -> str:
        return f"{self.role} {self.agent_key}".strip()


class SessionSummary(models.Model):
    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="summaries")
    covers_through_turn_index = models.PositiveIntegerField()
    summary_text = models.TextField()
    key_facts = models.JSONField(default=list, blank=True)
    decisions = models.JSONField(default=list, blank=True)
    open_questions = models.JSONField(default=list, blank=True)
    action_items = models.JSONField(default=list, blank=True)
    summary_used_fallback = models.BooleanField(default=False)
    extraction_used_fallback = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-covers_through_turn_index"]
        verbose_name_plural = "session summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["session", "covers_through_turn_index"], name="one_summary_per_covered_index"
            )
        ]

    def __str__(self) -> str:
        return f"Summary of {self.session_id} through turn {self.covers_through_turn_index}"


class TurnContextAudit(models.Model):
    """The context-budget figures of one agent call (or of a rejected one, with no turn)."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="context_audits")
    turn = models.ForeignKey(
        Turn, on_delete=models.CASCADE, null=True, blank=True, related_name="context_audits"
    )
    agent_key = models.CharField(max_length=32)
    model_alias = models.CharField(max_length=64)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    budget_tokens = models.PositiveIntegerField()
    tokens_before = models.PositiveIntegerField()
    tokens_after = models.PositiveIntegerField()
    summary_used = models.BooleanField(default=False)
    pruned_turn_count = models.PositiveIntegerField(default=0)
    pruned_through_turn_index = models.PositiveIntegerField(null=True, blank=True)
    rejected = models.BooleanField(default=False)
    summary_triggered = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Audit @{self.agent_key} {self.tokens_after}/{self.budget_tokens}"
