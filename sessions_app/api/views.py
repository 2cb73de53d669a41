"""Sessions (nested under rooms) and their turns, summaries and usage. Views route; services decide."""

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from orchestration.services.turns import turn_execute
from pantheon.api.schema import ERROR_RESPONSES, TURN_ERROR_RESPONSES
from pantheon.api.viewsets import OwnedViewSet
from rooms.selectors import room_get
from sessions_app import selectors, services
from sessions_app.api import serializers as s
from usage.selectors import usage_events_for_session, usage_totals


class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    """Sessions of one of your rooms."""

    serializer_class = s.SessionSerializer
    lookup_field = "pk"
    lookup_url_kwarg = "session_id"

    def get_owned_queryset(self):
        return selectors.session_list(user=self.request.user, room_id=self.kwargs["room_id"])

    @extend_schema(responses={201: s.SessionSerializer, **ERROR_RESPONSES})
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

    @extend_schema(responses={204: None, **ERROR_RESPONSES})
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


class TurnViewSet(OwnedViewSet):
    """Turns of one of your sessions."""

    serializer_class = s.TurnSerializer

    def get_serializer_class(self):
        # The browsable API's form (and OPTIONS) for POST shows what a client sends.
        if self.request is not None and self.request.method == "POST":
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
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.TurnSerializer(page, many=True).data)

    @extend_schema(
        request=s.TurnCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: s.TurnCreateResponseSerializer,
            200: s.TurnCreateResponseSerializer,
            **TURN_ERROR_RESPONSES,
        },
        description=(
            "Run a turn. `manual` dispatches the @tagged agents in tag order, `roundtable` every agent by "
            "position, `orchestrator` the agents a manager model picks. The response's `Server-Timing` "
            "header splits LLM time from Pantheon's own. A replayed Idempotency-Key answers 200."
        ),
    )
    def create(self, request: Request, session_id=None) -> Response:
        serializer = s.TurnCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = turn_execute(
            user=request.user,
            session_id=session_id,
            idempotency_key=request.headers.get("Idempotency-Key"),
            **serializer.validated_data,
        )
        turn = outcome.turn
        billable = [e for e in outcome.events if e.billable]
        # The same figures as /usage and /auth/me: cost_usd is every call, billed_cost_usd what the
        # user was charged.
        turn.usage = {
            "input_tokens": sum(e.input_tokens for e in outcome.events),
            "output_tokens": sum(e.output_tokens for e in outcome.events),
            "cost_usd": sum((e.cost_usd for e in outcome.events), start=Decimal(0)),
            "billed_cost_usd": sum((e.cost_usd for e in billable), start=Decimal(0)),
            "credits_burned": sum((e.credits_burned for e in billable), start=Decimal(0)),
            "llm_calls": len(outcome.events),
        }
        turn.replayed = outcome.replayed
        turn._prefetched_objects_cache = {"messages": outcome.messages}
        data = s.TurnCreateResponseSerializer(turn).data
        if outcome.replayed:
            return Response(data, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})
        return Response(data, status=status.HTTP_201_CREATED)


class SessionDetailViewSet(OwnedViewSet):
    """Summaries and usage of one of your sessions."""

    def get_owned_queryset(self):
        return selectors.session_list_for_user(user=self.request.user)

    @extend_schema(responses={200: s.SummarySerializer(many=True), **ERROR_RESPONSES})
    @action(detail=False, methods=["get"])
    def summaries(self, request: Request, session_id=None) -> Response:
        session = selectors.session_get(user=request.user, session_id=session_id)
        page = self.paginate_queryset(selectors.summary_list(session=session))
        return self.get_paginated_response(s.SummarySerializer(page, many=True).data)

    @extend_schema(
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
        }
    )
    @action(detail=False, methods=["get"])
    def usage(self, request: Request, session_id=None) -> Response:
        session = selectors.session_get(user=request.user, session_id=session_id)
        events = usage_events_for_session(session_id=session.pk)
        totals = usage_totals(events=events)
        page = self.paginate_queryset(events)
        response = self.get_paginated_response(s.UsageEventSerializer(page, many=True).data)
        response.data = {"totals": s.UsageTotalsSerializer(totals).data, **response.data}
        return response
