from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """DRF token authentication that accepts both ``Bearer <token>`` and ``Token <token>``."""

    keyword = "Bearer"

    def authenticate(self, request):
        auth = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not auth or auth[0].lower() not in ("bearer", "token"):
            return None
        if len(auth) != 2:
            from rest_framework import exceptions

            raise exceptions.AuthenticationFailed("Invalid token header.")
        return self.authenticate_credentials(auth[1])
