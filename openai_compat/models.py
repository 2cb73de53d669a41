import hashlib

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A named key a chat client uses instead of the user's token, for the OpenAI-compatible
    endpoint only. Only its SHA-256 is stored; the key itself is shown once, when it is made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def still_valid(self) -> bool:
        """Whether the key is still not revoked now (a stream asks between two agents)."""
        return ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).exists()


def api_key_hash(key: str) -> str:
    """Keys are long random secrets, so a plain SHA-256 (looked up through a unique index) is
    enough; a slow password hash would only slow every request down."""
    return hashlib.sha256(key.encode()).hexdigest()


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` of the endpoint, held per user across every room and session: the first
    request with a key takes this row (a unique index, so concurrent twins wait for it) before any
    session is chosen, and records the session its turn runs in; a twin then runs in that session,
    where the turn's own key check replays the stored turn. One key: one session, one turn, one
    charge, whether or not the request named a session."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_fingerprint = models.CharField(max_length=64)
    session = models.ForeignKey(
        "sessions_app.ChatSession", null=True, on_delete=models.CASCADE, related_name="+"
    )
    # The session's last turn the request's history holds (checked after the claim); None: named.
    head_turn_index = models.PositiveIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="openai_idempotency_key_once")]

    def __str__(self) -> str:
        return self.key


class KeptReply(models.Model):
    """A turn whose reply the client kept only part of (it stopped the stream and went on with what it
    had): the turn's ``assistant_output`` — what the next turns' context reads — is cut to the kept
    prefix, and the reply as it was made is kept here. Its messages (one per agent) stay whole."""

    turn = models.OneToOneField("sessions_app.Turn", on_delete=models.CASCADE, related_name="+")
    full_output = models.TextField()
    kept_chars = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.turn_id}: {self.kept_chars} of {len(self.full_output)} characters kept"
