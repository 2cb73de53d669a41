"""Sessions (nested under rooms) and their turns, summaries and usage. Views route; services decide."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from gevent.monkey import get_original
from rest_framework import mixins, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from orchestration.turns import (
    TurnOutcome,
    TurnRequest,
    turn_execute,
    turn_prepare,
    turn_request_build,
)
from orchestration.turns.preview import turn_preview
from pantheon.api.exceptions import application_error_body
from pantheon.api.gating import WorkGatedMixin
from pantheon.api.schema import ERROR_RESPONSES, INVALID, NOT_FOUND, TURN_ERROR_RESPONSES, UNAUTHENTICATED
from pantheon.api.streaming import EncodedStream, TurnStream, sse_event
from pantheon.api.timing import RequestTiming, request_timing_current
from pantheon.api.viewsets import OwnedViewSet, room_breadcrumbs
from rooms.selectors import room_get
from sessions_app import selectors, services
from sessions_app.api import serializers as s
from sessions_app.api.filters import SessionFilter, TurnFilter, UsageEventFilter
from sessions_app.models import ChatSession, SessionSummary, Turn
from usage.models import LlmCallEvent
from usage.selectors import usage_events_for_session, usage_totals


def session_breadcrumbs(view, *, with_turns: bool = False) -> list[tuple[str, str]]:
    """The browsable API's trail to a session's page: rooms, its room, its sessions, the session."""
    request = view.request
    session = selectors.session_get(user=request.user, session_id=view.kwargs["session_id"])
    room = session.room
    keys = {"room_id": room.pk, "session_id": session.pk}
    crumbs = [
        *room_breadcrumbs(request, room),
        ("Sessions", reverse("session-list", kwargs={"room_id": room.pk}, request=request)),
        (session.title or "Untitled session", reverse("session-detail", kwargs=keys, request=request)),
    ]
    if with_turns:
        crumbs.append(("Turns", reverse("turn-list", kwargs={"session_id": session.pk}, request=request)))
    return crumbs


class SessionCrumbsMixin:
    def breadcrumb_parents(self) -> list[tuple[str, str]]:
        return session_breadcrumbs(self, with_turns="turn_id" in self.kwargs)


@extend_schema(tags=["sessions"])
@extend_schema_view(
    list=extend_schema(
        summary="The room's sessions, newest first", responses={200: s.SessionSerializer, **ERROR_RESPONSES}
    ),
    retrieve=extend_schema(
        summary="One session, with links to its turns, summaries and usage",
        responses={200: s.SessionSerializer, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Start a session in the room",
        responses={201: s.SessionSerializer, **INVALID, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a session (soft: it then answers 404; its usage stays on record)",
        responses={204: None, **UNAUTHENTICATED, **NOT_FOUND},
    ),
)
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    """Sessions of one of your rooms."""

    model = ChatSession
    serializer_class = s.SessionSerializer
    filterset_class = SessionFilter
    lookup_field = "pk"
    lookup_url_kwarg = "session_id"

    def get_owned_queryset(self):
        return selectors.session_list(user=self.request.user, room_id=self.kwargs["room_id"])

    def breadcrumb_parents(self) -> list[tuple[str, str]]:
        crumbs = room_breadcrumbs(
            self.request, room_get(user=self.request.user, room_id=self.kwargs["room_id"])
        )
        if "session_id" in self.kwargs:
            crumbs.append(("Sessions", reverse("session-list", kwargs=self.kwargs, request=self.request)))
        return crumbs

    def create(self, request: Request, room_id=None) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = room_get(user=request.user, room_id=room_id)
        session = services.session_create(room=room, **serializer.validated_data)
        return Response(self.get_serializer(session).data, status=status.HTTP_201_CREATED)

    def list(self, request: Request, room_id=None) -> Response:
        # A missing or foreign room is a 404, not an empty list.
        room_get(user=request.user, room_id=room_id)
        return super().list(request, room_id=room_id)

    def destroy(self, request: Request, room_id=None, session_id=None) -> Response:
        services.session_delete(session=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Repeat a turn safely: the same key and body return the stored turn without running it again."
    ),
)


@extend_schema(tags=["turns"])
@extend_schema_view(
    list=extend_schema(
        summary="The session's turns in order, each with its messages",
        responses={200: s.TurnSerializer, **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="One turn, with its messages",
        responses={200: s.TurnSerializer, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    create=extend_schema(summary="Run a turn: the agents the mode picks answer your input"),
)
class TurnViewSet(WorkGatedMixin, SessionCrumbsMixin, OwnedViewSet):
    """Turns of one of your sessions."""

    model = Turn
    serializer_class = s.TurnSerializer
    filterset_class = TurnFilter
    lookup_field = "pk"
    lookup_url_kwarg = "turn_id"

    def get_serializer_class(self):
        # The browsable API's form (and OPTIONS) for POST shows what a client sends; a page, no stream.
        if self.request is not None and self.request.method == "POST":
            if getattr(self.request, "accepted_media_type", "").startswith("text/html"):
                return s.TurnFormSerializer
            return s.TurnCreateSerializer
        return s.TurnSerializer

    def get_throttles(self):
        if self.action == "create":
            self.throttle_scope = "turns"
        return super().get_throttles()

    def get_owned_queryset(self):
        session = selectors.session_get(user=self.request.user, session_id=self.kwargs["session_id"])
        return selectors.turn_list(session=session)

    def list(self, request: Request, session_id=None) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, session_id=None, turn_id=None) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def perform_content_negotiation(self, request, force=False):
        # A client asking for a stream gets JSON for everything that is not the stream itself
        # (refusals before the first call, replays): DRF has no renderer for text/event-stream.
        if _stream_asked(request):
            return (JSONRenderer(), JSONRenderer.media_type)
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        request=s.TurnCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: OpenApiResponse(
                s.TurnCreateResponseSerializer,
                description='The committed turn. With `Accept: text/event-stream` or `"stream": true`: '
                "`text/event-stream`, the events of docs/streaming.md, the last `turn.completed` "
                "carrying this body.",
            ),
            200: OpenApiResponse(s.TurnCreateResponseSerializer, description="A replayed Idempotency-Key."),
            **TURN_ERROR_RESPONSES,
        },
        description=(
            "Run a turn. `manual` dispatches the @tagged agents in tag order, `roundtable` every agent by "
            "position, `orchestrator` the agents a manager model picks. The response's `Server-Timing` "
            "header splits LLM time from Pantheon's own. A replayed Idempotency-Key answers 200."
        ),
    )
    def create(self, request: Request, session_id=None) -> Response | StreamingHttpResponse:
        serializer = s.TurnCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stream = serializer.validated_data.pop("stream") or _stream_asked(request)
        turn_request = turn_request_build(
            user=request.user,
            session_id=session_id,
            idempotency_key=request.headers.get("Idempotency-Key"),
            discussion=serializer.validated_data.pop("discussion", None),
            **serializer.validated_data,
        )
        if stream:
            return _turn_stream_response(turn_request, credential=request.auth)
        outcome = turn_execute(request=turn_request)
        data = turn_outcome_data(outcome)
        if outcome.replayed:
            return Response(data, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.TurnCreateSerializer,
        responses={200: s.TurnPreviewSerializer, **INVALID, **UNAUTHENTICATED, **NOT_FOUND},
        summary="What a turn would cost, before running it: no model call, no hold, no write",
        description=(
            "The same body as a turn. Answers the agents that would answer (orchestrator: decided by the "
            "manager among the candidates), each one's context tokens, the summary the turn may trigger, "
            "the worst case it would hold, your budgets' figures and what would refuse it (`refusal`)."
        ),
    )
    def preview(self, request: Request, session_id=None) -> Response:
        serializer = s.TurnCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.validated_data.pop("stream")
        preview = turn_preview(
            turn_request_build(user=request.user, session_id=session_id, **serializer.validated_data)
        )
        return Response(s.TurnPreviewSerializer(preview).data)


def _stream_asked(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


def turn_outcome_data(outcome: TurnOutcome, timing: RequestTiming | None = None) -> dict:
    """The body of a turn's response (also the ``turn.completed`` event of a streamed turn), with
    the request's Server-Timing figures so far."""
    turn = outcome.turn
    turn._prefetched_objects_cache = {"messages": outcome.messages}
    turn.usage = outcome.usage
    turn.replayed = outcome.replayed
    turn.budget = {"soft_limit_reached": outcome.budget_warnings} if outcome.budget_warnings else None
    timing = timing or request_timing_current()
    turn.timing = timing.snapshot() if timing is not None else None
    return _turn_body_serializer().to_representation(turn)


# The interpreter's own thread-local, not gevent's: patched, ``threading.local`` is per greenlet, and
# a gevent worker makes a greenlet per connection, so each new client rebuilt the serializer.
_serializers = get_original("threading", "local")()


def _turn_body_serializer() -> s.TurnCreateResponseSerializer:
    """One serializer per thread (for a gevent worker, per process: ``to_representation`` keeps
    nothing between calls, so greenlets may share it), its fields built once: building them (DRF
    walks the model's fields for every new serializer, ≈ 0.3 ms) would cost each turn more than
    writing the body does."""
    serializer = getattr(_serializers, "turn_body", None)
    if serializer is None:
        serializer = _serializers.turn_body = s.TurnCreateResponseSerializer()
    return serializer


def _turn_stream_response(turn_request: TurnRequest, *, credential=None) -> StreamingHttpResponse:
    """Refusals raise here, before the stream begins, and answer as plain JSON with their status."""
    prepared = turn_prepare(turn_request)
    if isinstance(prepared, TurnOutcome):  # an Idempotency-Key replay: the stored result's final events
        turn = prepared.turn
        body = sse_event(
            "turn.started",
            {"turn_id": str(turn.pk), "mode": turn.mode, "agent_keys": turn.responding_agent_keys},
        ) + sse_event("turn.completed", turn_outcome_data(prepared))
        response = StreamingHttpResponse([body], content_type="text/event-stream", status=200)
        response["Idempotent-Replayed"] = "true"
        return _no_buffering(response)
    stream = TurnStream(prepared, credential=credential).start()

    def encode(name: str, data) -> bytes:
        if name == "turn.completed":
            return sse_event(name, turn_outcome_data(data, stream.timing))
        if name == "error":
            return sse_event(name, application_error_body(data))
        return sse_event(name, data)

    return _no_buffering(
        StreamingHttpResponse(
            EncodedStream(stream, encode, head=b": turn accepted\n\n"),
            content_type="text/event-stream",
            status=201,
        )
    )


def _no_buffering(response: StreamingHttpResponse) -> StreamingHttpResponse:
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


@extend_schema(tags=["summaries"])
@extend_schema_view(
    list=extend_schema(
        summary="The session's summaries, newest first",
        responses={200: s.SummarySerializer, **UNAUTHENTICATED, **NOT_FOUND},
    )
)
class SummaryViewSet(SessionCrumbsMixin, mixins.ListModelMixin, OwnedViewSet):
    """Summaries of one of your sessions."""

    model = SessionSummary
    serializer_class = s.SummarySerializer

    def get_owned_queryset(self):
        session = selectors.session_get(user=self.request.user, session_id=self.kwargs["session_id"])
        return selectors.summary_list(session=session)


@extend_schema(tags=["usage"])
@extend_schema_view(
    list=extend_schema(
        summary="The session's LLM calls and their totals (both follow the filters)",
        responses={
            200: inline_serializer(
                "SessionUsage",
                {
                    "totals": s.UsageTotalsSerializer(),
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": s.UsageEventSerializer(many=True),
                },
            ),
            **ERROR_RESPONSES,
        },
    )
)
class UsageViewSet(SessionCrumbsMixin, OwnedViewSet):
    """Usage of one of your sessions: every LLM call recorded for it, with totals."""

    model = LlmCallEvent
    serializer_class = s.UsageEventSerializer
    filterset_class = UsageEventFilter

    def get_owned_queryset(self):
        session = selectors.session_get(user=self.request.user, session_id=self.kwargs["session_id"])
        return usage_events_for_session(session_id=session.pk)

    def list(self, request: Request, session_id=None) -> Response:
        events = self.filter_queryset(self.get_queryset())
        totals = usage_totals(events=events)
        page = self.paginate_queryset(events)
        response = self.get_paginated_response(s.UsageEventSerializer(page, many=True).data)
        response.data = {"totals": s.UsageTotalsSerializer(totals).data, **response.data}
        return response
