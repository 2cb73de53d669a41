"""API keys (``Authorization: Bearer pan-…``): named, revocable keys a chat client holds instead of
the user's token, accepted by the OpenAI-compatible endpoint only."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from openai_compat.selectors import api_key_get
from openai_compat.services import API_KEY_PREFIX, api_key_used
from pantheon.logging import log_context_bind


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """A bearer credential that looks like an API key is one, or the request fails (401); anything
    else is left to the token authentication that follows."""

    def authenticate(self, request):
        parts = request.META.get("HTTP_AUTHORIZATION", "").split()
        if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1].startswith(API_KEY_PREFIX):
            return None
        api_key = api_key_get(key=parts[1])
        if api_key is None or not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        api_key_used(api_key=api_key)
        log_context_bind(user_id=api_key.user_id)
        return api_key.user, api_key

    def authenticate_header(self, request) -> str:
        return "Bearer"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "openai_compat.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`pan-…`) from `POST /api/v1/openai/keys`.",
        }
