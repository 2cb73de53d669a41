"""Rooms and their agents. Views route; services decide."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from pantheon.api.schema import INVALID, NOT_FOUND, UNAUTHENTICATED, error
from pantheon.api.viewsets import OwnedViewSet, RoomNestedMixin
from rooms import selectors, services
from rooms.api.filters import RoomFilter
from rooms.api.serializers import AgentSerializer, RoomSerializer
from rooms.models import Agent, Room

KEY_TAKEN = {409: error("A live agent of the room already has that key (`agent_key_taken`).")}


@extend_schema(tags=["rooms"])
@extend_schema_view(
    list=extend_schema(
        summary="Your rooms, newest first", responses={200: RoomSerializer, **INVALID, **UNAUTHENTICATED}
    ),
    create=extend_schema(
        summary="Create a room",
        request=RoomSerializer,
        responses={201: RoomSerializer, **INVALID, **UNAUTHENTICATED},
    ),
    retrieve=extend_schema(
        summary="A room with its agents",
        responses={200: RoomSerializer, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change a room's name or description",
        request=RoomSerializer,
        responses={200: RoomSerializer, **INVALID, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a room (soft: it and its agents and sessions then answer 404)",
        responses={204: None, **UNAUTHENTICATED, **NOT_FOUND},
    ),
)
class RoomViewSet(OwnedViewSet):
    model = Room
    serializer_class = RoomSerializer
    filterset_class = RoomFilter
    lookup_field = "pk"
    lookup_url_kwarg = "room_id"

    def get_owned_queryset(self):
        return selectors.room_list(user=self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_create(owner=request.user, **serializer.validated_data)
        return Response(self.get_serializer(room).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, room_id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def partial_update(self, request: Request, room_id: str) -> Response:
        room = self.get_object()
        serializer = self.get_serializer(room, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        room = services.room_update(room=room, **serializer.validated_data)
        return Response(self.get_serializer(room).data)

    def destroy(self, request: Request, room_id: str) -> Response:
        services.room_delete(room=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["agents"])
@extend_schema_view(
    list=extend_schema(
        summary="The room's agents, by position",
        responses={200: AgentSerializer, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Add an agent to the room",
        request=AgentSerializer,
        responses={201: AgentSerializer, **INVALID, **UNAUTHENTICATED, **NOT_FOUND, **KEY_TAKEN},
    ),
    retrieve=extend_schema(
        summary="One agent",
        responses={200: AgentSerializer, **UNAUTHENTICATED, **NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change an agent (its key too)",
        request=AgentSerializer,
        responses={200: AgentSerializer, **INVALID, **UNAUTHENTICATED, **NOT_FOUND, **KEY_TAKEN},
    ),
    destroy=extend_schema(
        summary="Delete an agent (soft: its key is free again at once)",
        responses={204: None, **UNAUTHENTICATED, **NOT_FOUND},
    ),
)
class AgentViewSet(RoomNestedMixin, OwnedViewSet):
    """Agents of one of your rooms, addressed by their key."""

    model = Agent
    serializer_class = AgentSerializer
    lookup_field = "agent_key"
    lookup_url_kwarg = "agent_key"

    def get_owned_queryset(self):
        return selectors.agent_list(room=self.get_room())

    def list(self, request: Request, room_id: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def create(self, request: Request, room_id: str) -> Response:
        room = self.get_room()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = services.agent_create(room=room, **serializer.validated_data)
        return Response(self.get_serializer(agent).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, room_id: str, agent_key: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def partial_update(self, request: Request, room_id: str, agent_key: str) -> Response:
        agent = self.get_object()
        serializer = self.get_serializer(agent, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        agent = services.agent_update(agent=agent, **serializer.validated_data)
        return Response(self.get_serializer(agent).data)

    def destroy(self, request: Request, room_id: str, agent_key: str) -> Response:
        services.agent_delete(agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
