"""The OpenAI-compatible endpoint: rooms as models, a chat completion as a turn
(docs/openai-compatible.md). Views route; ``openai_compat.services`` decides."""

from collections.abc import Iterable

from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from openai_compat import selectors
from openai_compat.api import serializers as s
from openai_compat.api.authentication import ApiKeyAuthentication
from openai_compat.api.completions import KEEPALIVE, CompletionChunks, completion_data
from openai_compat.api.errors import openai_error_body, openai_exception_handler
from openai_compat.api.parsers import BoundedJSONParser
from openai_compat.models import ApiKey
from openai_compat.services import ChatTurn, chat_turn_prepare, chat_turn_preview, chat_turn_record
from orchestration.turns import TurnOutcome, turn_run
from pantheon.api.authentication import BearerTokenAuthentication
from pantheon.api.gating import WorkGatedMixin
from pantheon.api.streaming import EncodedStream, TurnStream
from pantheon.errors import InvalidInput
from rooms.models import Agent
from rooms.selectors import agent_list

SESSION_HEADER = "X-Pantheon-Session"
PREVIEW_HEADER = "X-Pantheon-Preview"
TAGS = ["openai"]


def openai_error(description: str) -> OpenApiResponse:
    return OpenApiResponse(s.OpenAIErrorSerializer, description=description)


UNAUTHENTICATED = {401: openai_error("Missing, bad or revoked token or API key (`not_authenticated`).")}
MODEL_NOT_FOUND = {404: openai_error("Not one of your rooms (`model_not_found`), or a session not of it.")}


class OpenAIView(APIView):
    """Errors in the OpenAI shape; the user's token or one of their API keys as the bearer."""

    authentication_classes = [ApiKeyAuthentication, BearerTokenAuthentication]
    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return openai_exception_handler

    def perform_content_negotiation(self, request, force=False):
        # Always JSON (a stream is a response of its own): SDKs send Accept headers DRF would refuse.
        return (JSONRenderer(), JSONRenderer.media_type)


class ModelListView(OpenAIView):
    @extend_schema(
        tags=TAGS,
        operation_id="openai_models_list",
        summary="Your rooms as models (each in its modes)",
        responses={200: s.OpenAIModelListSerializer, **UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        models = selectors.room_models_list(user=request.user)
        return Response(
            {"object": "list", "data": [model_data(m, agents=m.room.agents.all()) for m in models]}
        )


class ModelDetailView(OpenAIView):
    @extend_schema(
        tags=TAGS,
        operation_id="openai_models_retrieve",
        summary="One of your rooms as a model",
        parameters=[OpenApiParameter("model_id", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: s.OpenAIModelSerializer, **UNAUTHENTICATED, **MODEL_NOT_FOUND},
    )
    def get(self, request: Request, model_id: str) -> Response:
        model = selectors.room_model_get(user=request.user, model_id=model_id)
        return Response(model_data(model, agents=agent_list(room=model.room)))


MODE_NOTES = {
    selectors.DEFAULT_MODE: "manual when your message @tags agents, else the orchestrator picks",
    "manual": "the agents your message @tags",
    "roundtable": "every agent, in order",
    "orchestrator": "the agents a manager model picks",
    "discussion": "the agents discuss among themselves, the manager picking each next speaker",
}


def model_data(model: selectors.RoomModel, *, agents: Iterable[Agent]) -> dict:
    """``agents``: the room's live agents in position order."""
    room = model.room
    agents = ", ".join(f"@{a.agent_key} {a.name} ({a.model_alias})" for a in agents)
    description = f"{room.description.strip()} " if room.description.strip() else ""
    return {
        "id": model.id,
        "object": "model",
        "created": int(room.created_at.timestamp()),
        "owned_by": "pantheon",
        "name": f"{room.name} ({model.mode})" if model.mode else room.name,
        "description": f"{description}Agents: {agents or 'none yet'}. Answers: {MODE_NOTES[model.mode]}.",
    }


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Repeat a request safely: the same key and message return the stored turn.",
)
SESSION_PARAMETER = OpenApiParameter(
    SESSION_HEADER,
    OpenApiTypes.UUID,
    OpenApiParameter.HEADER,
    description="Run the turn in this session of the room (else the history finds or opens one).",
)


class ChatCompletionView(WorkGatedMixin, OpenAIView):
    throttle_scope = "turns"
    chat: ChatTurn | None = None  # set once the turn passed its checks: from then on it is paid work

    @extend_schema(
        tags=TAGS,
        operation_id="openai_chat_completions_create",
        summary="Run one turn of a room, OpenAI style",
        description=(
            "The last user message is the turn's input; the earlier messages find the session "
            "(docs/openai-compatible.md). With `stream: true` the answer is `text/event-stream`: "
            "`chat.completion.chunk` events, then `data: [DONE]`. Errors other than 409/429 refusals "
            "carry `x-should-retry: false`."
        ),
        request=s.ChatCompletionRequestSerializer,
        parameters=[IDEMPOTENCY_HEADER, SESSION_PARAMETER],
        responses={
            200: s.ChatCompletionSerializer,
            400: openai_error(
                "Malformed request, or a parameter a room cannot honour (`invalid`); `param` names it."
            ),
            **UNAUTHENTICATED,
            402: openai_error("Your credits cannot cover the turn (`insufficient_credits`)."),
            **MODEL_NOT_FOUND,
            409: openai_error("The session is busy (`turn_conflict`); see Retry-After."),
            413: openai_error("The body is over `OPENAI_REQUEST_MAX_BYTES` (`request_too_large`)."),
            422: openai_error("`no_agent_selected`, `context_budget_exceeded` or `idempotency_key_reused`."),
            429: openai_error("Rate limited (`throttled`); see Retry-After."),
            502: openai_error("Every agent call failed (`llm_unavailable`); the failed turn is recorded."),
            503: openai_error("The turn could not be saved (`turn_write_failed`)."),
        },
    )
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        serializer = s.ChatCompletionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.preview_asked() or request.headers.get(PREVIEW_HEADER, "").lower() == "true":
            preview = chat_turn_preview(
                user=request.user,
                model_id=serializer.validated_data["model"],
                messages=serializer.validated_messages(),
                session_id=_explicit_session(request, serializer),
                api_key_id=request.auth.pk if isinstance(request.auth, ApiKey) else None,
                discussion=serializer.discussion(),
            )
            return Response({"object": "pantheon.turn_preview", **preview.as_dict()})
        chat = chat_turn_prepare(
            user=request.user,
            model_id=serializer.validated_data["model"],
            messages=serializer.validated_messages(),
            session_id=_explicit_session(request, serializer),
            idempotency_key=request.headers.get("Idempotency-Key"),
            api_key_id=request.auth.pk if isinstance(request.auth, ApiKey) else None,
            discussion=serializer.discussion(),
        )
        self.chat = chat
        if serializer.validated_data["stream"]:
            return self._stream(chat, include_usage=serializer.include_usage())
        if isinstance(chat.prepared, TurnOutcome):
            outcome = chat.prepared
        else:
            outcome = turn_run(chat.prepared)
            chat_turn_record(chat=chat, outcome=outcome)
        return Response(completion_data(chat, outcome), headers=self._headers(outcome))

    def _stream(self, chat: ChatTurn, *, include_usage: bool) -> StreamingHttpResponse:
        prepared = chat.prepared
        if isinstance(prepared, TurnOutcome):
            chunks = CompletionChunks(chat, turn_id=prepared.turn.pk, include_usage=include_usage)
            body = [chunks.replay(prepared)]
            headers = self._headers(prepared)
        else:
            chunks = CompletionChunks(chat, turn_id=prepared.turn_id, include_usage=include_usage)
            body = EncodedStream(
                TurnStream(prepared, credential=self.request.auth).start(),
                chunks.encode,
                keepalive=KEEPALIVE,
                head=chunks.head(),
            )
            headers = {SESSION_HEADER: str(chat.session.pk)}
        response = StreamingHttpResponse(body, content_type="text/event-stream", status=status.HTTP_200_OK)
        for name, value in {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}.items():
            response[name] = value
        return response

    def _headers(self, outcome: TurnOutcome) -> dict[str, str]:
        headers = {SESSION_HEADER: str(outcome.turn.session_id)}
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        return headers

    def handle_exception(self, exc):
        """Only a 409 or 429 refusal before any call may be retried by the client's SDK: anything
        else failed for good, or made calls someone paid for."""
        response = super().handle_exception(exc)
        if self.chat is not None or response.status_code not in (409, 429):
            response["x-should-retry"] = "false"
        if self.chat is not None:
            response[SESSION_HEADER] = str(self.chat.session.pk)
        return response


def _explicit_session(request: Request, serializer: s.ChatCompletionRequestSerializer) -> str | None:
    header, metadata = request.headers.get(SESSION_HEADER), serializer.session_id()
    if header and metadata and header != metadata:
        raise InvalidInput.for_field("metadata", f"session_id differs from the {SESSION_HEADER} header.")
    return header or metadata


@csrf_exempt  # a bearer-token API: a POST elsewhere is a 404 too, never Django's CSRF page
def not_found(request, path: str = "") -> JsonResponse:
    """Any other path under the endpoint, with any method: a 404 an OpenAI client understands."""
    body = {"detail": "Pantheon serves models and chat/completions only.", "code": "not_found"}
    return JsonResponse(openai_error_body(body, status.HTTP_404_NOT_FOUND), status=status.HTTP_404_NOT_FOUND)
