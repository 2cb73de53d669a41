"""API tokens: issued per client or device, listed, revoked (django-rest-knox's model and hashing).

A token is shown once, when issued; only its digest is stored. Revoking deletes the row: the next
request with it is a 401, and a streamed turn running on it stops at its next agent.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from usage.models import ApiToken

NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length


def api_token_issue(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """A new token for ``user`` (the token itself is the second value: it is never stored)."""
    return ApiToken.objects.create(user=user, name=(name or "").strip()[:NAME_MAX_LENGTH])


def api_tokens_live(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))


def api_token_revoke(*, token: ApiToken) -> None:
    token.delete()


def api_tokens_revoke_all(*, user: AbstractBaseUser) -> int:
    return ApiToken.objects.filter(user=user).delete()[0]


def api_token_used(*, token: ApiToken) -> None:
    """Note a use, and push the expiry on by ``API_TOKEN_TTL_DAYS`` (never past the token's maximum
    age): at most one write a minute per token, so a busy client costs no write per request."""
    now = timezone.now()
    knox = settings.REST_KNOX
    if (
        token.last_used_at is not None
        and (now - token.last_used_at).total_seconds() < knox["MIN_REFRESH_INTERVAL"]
    ):
        return
    token.last_used_at = now
    token.expiry = min(now + knox["TOKEN_TTL"], token.created + knox["AUTO_REFRESH_MAX_TTL"])
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=token.last_used_at, expiry=token.expiry)
