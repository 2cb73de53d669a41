"""DRF's tokens were stored as they are sent (``authtoken_token.key``): each becomes an ``ApiToken``
that stores only its digest, so its holder keeps working with the same token, and the plaintext row
is deleted. A moved token expires ``API_TOKEN_TTL_DAYS`` after the migration (then as any other: on
by use, at most ``API_TOKEN_MAX_AGE_DAYS`` after the migration)."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone
from knox.crypto import hash_token

TOKEN_KEY_LENGTH = 15  # knox's CONSTANTS.TOKEN_KEY_LENGTH: the characters a token is found by


def hash_plaintext_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("usage", "ApiToken")
    now = timezone.now()
    expiry = now + settings.REST_KNOX["TOKEN_TTL"]
    # ``created`` is the migration's time: the maximum age runs from now, not from the token's first
    # day (a 400-day-old token would be past it at once).
    moved = [
        ApiToken(
            digest=hash_token(token.key),
            token_key=token.key[:TOKEN_KEY_LENGTH],
            user_id=token.user_id,
            created=now,
            expiry=expiry,
            name="token from before hashing",
        )
        for token in Token.objects.all().iterator()
    ]
    ApiToken.objects.bulk_create(moved, batch_size=1000)
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0011_api_tokens"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop)]
