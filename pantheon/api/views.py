"""Health, authentication and the model catalog."""

import logging

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pantheon.api import serializers as s
from pantheon.api.exceptions import ApplicationError
from pantheon.api.schema import ERROR_RESPONSES, error
from usage.selectors import catalog_list_active, user_usage_summary
from usage.services.accounts import user_register

logger = logging.getLogger(__name__)


class RegistrationClosed(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "registration_closed"
    default_detail = "Registration is closed on this server."


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    default_detail = "Unable to log in with the provided credentials."


def broker_status() -> str:
    """``eager`` when Celery runs in-process, else whether the broker answers a ping."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager"
    from pantheon.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        logger.warning("broker unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok"


class HealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = []

    @extend_schema(responses={200: s.HealthSerializer, 503: s.HealthSerializer}, auth=[])
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            database = "ok"
        except Exception as exc:
            logger.error("health: database unavailable: %s", type(exc).__name__)
            database = "unavailable"
        body = {
            "status": "ok" if database == "ok" else "unavailable",
            "database": database,
            "broker": broker_status(),
        }
        return Response(
            body, status=status.HTTP_200_OK if database == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        )


class RegisterView(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "auth"

    @extend_schema(
        request=s.RegisterSerializer,
        responses={
            201: s.RegisterResponseSerializer,
            400: error("Invalid"),
            403: error("Registration closed"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        if not settings.REGISTRATION_OPEN:
            raise RegistrationClosed()
        serializer = s.RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data)
        token = Token.objects.create(user=user)
        return Response({"id": user.pk, "username": user.username, "token": token.key}, status=201)


class TokenView(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "auth"

    @extend_schema(
        request=s.TokenRequestSerializer,
        responses={200: s.TokenResponseSerializer, 400: error("Bad credentials (`invalid_credentials`).")},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = s.TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request=request._request, **serializer.validated_data)
        if user is None or not user.is_active:
            raise InvalidCredentials()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeView(APIView):
    @extend_schema(responses={200: s.MeSerializer, 401: ERROR_RESPONSES[401]})
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            **user_usage_summary(user=user),
        }
        return Response(s.MeSerializer(data).data)


class ModelListView(ListAPIView):
    """The active model catalog with context windows and current prices."""

    serializer_class = s.CatalogModelSerializer
    pagination_class = None

    def get_queryset(self):
        return catalog_list_active()
