"""Health, authentication and the model catalog."""

import logging

from django.conf import settings
from django.contrib.auth import authenticate, logout
from django.db import DatabaseError, transaction
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pantheon.api import serializers as s
from pantheon.api.renderers import API_NAME
from pantheon.api.schema import THROTTLED, UNAUTHENTICATED, error
from pantheon.broker import broker_ping
from pantheon.db_connections import database_ping
from pantheon.errors import Forbidden, InvalidInput, NotFound
from pantheon.limits import cache_ping
from usage.cooldown import deployments_health
from usage.models import ApiToken
from usage.selectors import user_usage_summary
from usage.services.accounts import user_register
from usage.services.budgets import budget_warnings_current
from usage.services.tokens import api_token_issue, api_token_revoke, api_tokens_live, api_tokens_revoke_all

logger = logging.getLogger(__name__)


class RegistrationClosed(Forbidden):
    code = "registration_closed"
    default_message = "Registration is closed on this server."


class InvalidCredentials(InvalidInput):
    code = "invalid_credentials"
    default_message = "Unable to log in with the provided credentials."


def database_status() -> str:
    """Whether the database answers, asked on the health check's own connection
    (``database_ping``): never behind the turns queued for the pool."""
    try:
        database_ping()
    except Exception as exc:  # any failure means "down" to a health check
        logger.error("health: database unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok"


def broker_status() -> str:
    """``eager`` when Celery runs tasks in-process, else whether the broker answers, tried once on
    the process's kept connection (``pantheon.broker``).

    One attempt with the transport's short socket timeouts: a health check must answer fast, not
    wait out kombu's retry intervals.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager"
    try:
        broker_ping()
    except Exception as exc:
        logger.warning("health: broker unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok"


def cache_status() -> str:
    """``local`` when the cache is this process's memory (the embedded default), else whether Redis
    answers. Without it rate limits count per process (``pantheon.limits``): degraded, not down."""
    try:
        asked = cache_ping()
    except Exception as exc:
        logger.warning("health: cache unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok" if asked else "local"


def health_checks() -> dict[str, str]:
    """The overall status and each dependency's: only the database is essential."""
    body = {"database": database_status(), "cache": cache_status(), "broker": broker_status()}
    if body["database"] != "ok":
        overall = "unavailable"
    elif "unavailable" in body.values():
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, **body}


def _health_response(body: dict) -> Response:
    unavailable = body["status"] == "unavailable"
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE if unavailable else status.HTTP_200_OK)


class HealthView(APIView):
    """Liveness of the web process and its dependencies; no credentials needed.

    Only the database is essential: without it nothing works (503). Without the cache (limits per
    process) or the broker (summaries left to the sweep) the API still serves: ``degraded``, 200.
    Load balancers call it: it reads no table and authenticates no one (``HealthDetailView`` does).
    """

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = []

    @extend_schema(
        tags=["health"],
        summary="Health of the API and of its database, cache and broker",
        responses={200: s.HealthSerializer, 503: s.HealthSerializer},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return _health_response(health_checks())


class HealthDetailView(APIView):
    """For operators (staff): the health checks, and each alias's deployments with their cool-downs.

    Deployment names and states are not for everyone: without credentials 401, without staff 403.
    With the database down nobody can be authenticated: the plain checks answer (503), nothing more.
    """

    permission_classes = [IsAdminUser]

    @extend_schema(
        tags=["health"],
        summary="Health, with each model's deployments and their cool-downs (staff only)",
        responses={
            200: s.HealthDetailSerializer,
            503: s.HealthSerializer,
            **UNAUTHENTICATED,
            403: error("Not a staff user (`permission_denied`)."),
        },
    )
    def get(self, request: Request) -> Response:
        body = health_checks()
        if body["database"] == "ok":
            models: dict[str, list[dict]] = {}
            for deployment in deployments_health():
                models.setdefault(deployment.alias, []).append(
                    {
                        "name": deployment.name,
                        "position": deployment.position,
                        "state": deployment.state,
                        "cooling_seconds": deployment.cooling_seconds,
                        "recent_failures": deployment.recent_failures,
                    }
                )
            body["models"] = [{"alias": alias, "deployments": rows} for alias, rows in models.items()]
        return _health_response(body)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DatabaseError):  # raised by authentication: the database is down
            logger.error("health detail: database unavailable: %s", type(exc).__name__)
            return _health_response(health_checks())
        return super().handle_exception(exc)


class _CredentialsView(APIView):
    """Register and token take credentials in the body: a stale or bad ``Authorization`` header must
    not answer 401 on the very endpoints a client uses to get a new token."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_scope = "auth"


class RegisterView(_CredentialsView):
    throttle_scope = "register"  # per client address (pantheon.client), a few an hour
    serializer_class = s.RegisterSerializer  # the browsable API's HTML form

    @extend_schema(
        tags=["auth"],
        summary="Create an account and get its token",
        request=s.RegisterSerializer,
        responses={
            201: s.RegisterResponseSerializer,
            400: error("Invalid username, password or email (`invalid`); `fields` says which."),
            403: error("Registration is turned off on this server (`registration_closed`)."),
            **THROTTLED,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        if not settings.REGISTRATION_OPEN:
            raise RegistrationClosed()
        serializer = s.RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            user = user_register(**serializer.validated_data)
            _, token = api_token_issue(user=user, name="registration")
        body = {"id": user.pk, "username": user.username, "token": token}
        return Response(s.RegisterResponseSerializer(body).data, status=status.HTTP_201_CREATED)


class TokenView(_CredentialsView):
    serializer_class = s.CredentialsSerializer

    @extend_schema(
        tags=["auth"],
        summary="Exchange a username and password for a new API token (one per client or device)",
        description=(
            "Each call issues a new token, named by `name`; the others stay valid until they expire "
            "or are revoked (`GET /auth/tokens`, `POST /auth/logout`). Failed logins are limited per "
            "username and per address: past the limit a 429 with `Retry-After`."
        ),
        request=s.CredentialsSerializer,
        responses={
            200: s.TokenResponseSerializer,
            400: error("Bad credentials (`invalid_credentials`) or a malformed body (`invalid`)."),
            **THROTTLED,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = s.CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data.pop("name", "")
        user = authenticate(request=request._request, **serializer.validated_data)
        if user is None or not user.is_active:
            raise InvalidCredentials()
        token, raw = api_token_issue(user=user, name=name)
        body = {"token": raw, "token_id": token.public_id, "expires_at": token.expiry}
        return Response(s.TokenResponseSerializer(body).data)


class TokensView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Your API tokens that have not expired, newest first (never the tokens themselves)",
        responses={200: s.ApiTokenSerializer(many=True), **UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        tokens = api_tokens_live(user=request.user)
        return Response(s.ApiTokenSerializer(tokens, many=True, context={"current": request.auth}).data)


class TokenDetailView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Revoke one of your API tokens: requests with it answer 401 at once",
        responses={204: None, 404: error("No such token of yours (`not_found`)."), **UNAUTHENTICATED},
    )
    def delete(self, request: Request, token_id) -> Response:
        token = ApiToken.objects.filter(user=request.user, public_id=token_id).first()
        if token is None:
            raise NotFound()
        api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Log out: revoke the token this request came with (or end the browser session)",
        request=None,
        responses={204: None, **UNAUTHENTICATED},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            api_token_revoke(token=request.auth)
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Log out everywhere: revoke every API token of yours (and end this browser session)",
        request=None,
        responses={200: s.LogoutAllResponseSerializer, **UNAUTHENTICATED},
    )
    def post(self, request: Request) -> Response:
        revoked = api_tokens_revoke_all(user=request.user)
        if not isinstance(request.auth, ApiToken):
            logout(request._request)
        return Response(s.LogoutAllResponseSerializer({"revoked": revoked}).data)


class MeView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="You: your credit balance and the totals of your LLM usage",
        responses={200: s.MeSerializer, **UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            **user_usage_summary(user=user),
            "budget_warnings": budget_warnings_current(user_id=user.pk),
        }
        return Response(s.MeSerializer(data).data)


# Link name → URL name of the API root's entries.
API_ROOT_LINKS = {
    "health": "health",
    "register": "auth-register",
    "token": "auth-token",
    "me": "auth-me",
    "tokens": "auth-tokens",
    "models": "model-list",
    "rooms": "room-list",
    "schema": "schema",
    "docs": "swagger-ui",
    "redoc": "redoc",
}


class ApiRootView(APIView):
    """Pantheon's API: where to start."""

    name = API_NAME  # the browsable API's title and first breadcrumb, not the class's "Api Root"

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        tags=["root"],
        summary="Links to where to start",
        auth=[],
        responses={
            200: inline_serializer(
                "ApiRoot",
                {name: serializers.URLField() for name in API_ROOT_LINKS},
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response(
            {name: request.build_absolute_uri(reverse(url_name)) for name, url_name in API_ROOT_LINKS.items()}
        )
