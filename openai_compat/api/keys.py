"""Your API keys for the OpenAI-compatible endpoint: list, read, create (the key is shown once), revoke.
Managed with your token or login, never with an API key, so a leaked key cannot make more."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from openai_compat import selectors, services
from openai_compat.api import serializers as s
from openai_compat.models import ApiKey
from pantheon.api.schema import ERROR_RESPONSES, INVALID, NOT_FOUND, UNAUTHENTICATED
from pantheon.api.viewsets import OwnedViewSet


@extend_schema(tags=["openai"])
@extend_schema_view(
    list=extend_schema(
        summary="Your API keys for the OpenAI-compatible endpoint (never the keys themselves)",
        responses={200: s.ApiKeySerializer, **UNAUTHENTICATED},
    ),
    retrieve=extend_schema(
        summary="One of your API keys (never the key itself)",
        responses={200: s.ApiKeySerializer, **UNAUTHENTICATED, **NOT_FOUND},
    ),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    model = ApiKey
    serializer_class = s.ApiKeySerializer
    lookup_url_kwarg = "key_id"

    def get_owned_queryset(self):
        return selectors.api_key_list(user=self.request.user)

    @extend_schema(
        summary="Create an API key for chat clients (the key is in this response only)",
        responses={201: s.ApiKeyCreatedSerializer, **INVALID, **UNAUTHENTICATED},
    )
    def create(self, request: Request) -> Response:
        serializer = s.ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, key = services.api_key_create(user=request.user, **serializer.validated_data)
        api_key.key = key
        return Response(s.ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke an API key (it stops working at once)", responses={204: None, **ERROR_RESPONSES}
    )
    def destroy(self, request: Request, key_id=None) -> Response:
        services.api_key_revoke(api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
