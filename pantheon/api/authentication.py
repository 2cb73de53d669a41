from django.utils import timezone
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import authentication, exceptions

from pantheon.logging import log_context_bind
from usage.services.tokens import api_token_used


class BearerTokenAuthentication(TokenAuthentication):
    """An API token (django-rest-knox: looked up by its first characters, compared by digest) sent as
    ``Bearer <token>`` or ``Token <token>``. An expired token is deleted and refused (401)."""

    def authenticate(self, request):
        auth = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not auth or auth[0].lower() not in ("bearer", "token"):
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        user, token = self.authenticate_credentials(auth[1].encode())
        log_context_bind(user_id=user.pk)  # the rest of the request's log lines name the user
        return user, token

    def authenticate_header(self, request) -> str:
        return "Bearer"

    def renew_token(self, auth_token) -> None:
        api_token_used(token=auth_token)

    def _cleanup_token(self, auth_token) -> bool:
        # This token only: knox also reads every other token of the user on each request to delete
        # the expired ones, a query per request for what the listing hides anyway.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "pantheon.api.authentication.BearerTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")  # noqa: S106


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF session authentication (the browsable API), naming the user in the request's log lines."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            log_context_bind(user_id=result[0].pk)
        return result


class SessionAuthenticationScheme(SessionScheme):
    """The schema describes it as DRF's session authentication (cookie)."""

    target_class = "pantheon.api.authentication.SessionAuthentication"
