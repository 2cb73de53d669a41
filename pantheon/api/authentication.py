from drf_spectacular.authentication import SessionScheme
from rest_framework import authentication

from pantheon.logging import log_context_bind


class BearerTokenAuthentication(authentication.TokenAuthentication):
    """DRF token authentication that accepts both ``Bearer <token>`` and ``Token <token>``."""

    keyword = "Bearer"

    def authenticate(self, request):
        auth = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not auth or auth[0].lower() not in ("bearer", "token"):
            return None
        if len(auth) != 2:
            from rest_framework import exceptions

            raise exceptions.AuthenticationFailed("Invalid token header.")
        user, token = self.authenticate_credentials(auth[1])
        log_context_bind(user_id=user.pk)  # the rest of the request's log lines name the user
        return user, token


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
