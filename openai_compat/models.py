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
