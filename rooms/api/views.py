"""Rooms and their agents. Views route; services decide."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from pantheon.api.schema import ERROR_RESPONSES, error
from pantheon.api.viewsets import OwnedViewSet
from rooms import selectors, services
from rooms.api.serializers import AgentSerializer, AgentUpdateSerializer, RoomSerializer, RoomUpdateSerializer

AGENT_ERRORS = {**ERROR_RESPONSES, 409: error("A live agent of the room has that key (`agent_key_taken`).")}


class RoomViewSet(OwnedViewSet):
    """Your rooms. DELETE is a soft delete: the room then answers 404."""

    serializer_class = RoomSerializer
    lookup_field = "pk"
    lookup_url_kwarg = "room_id"

    def get_owned_queryset(self):
        return selectors.room_list(user=self.request.user)

    @extend_schema(responses={200: RoomSerializer(many=True), **ERROR_RESPONSES})
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RoomSerializer(page, many=True).data)

    @extend_schema(request=RoomSerializer, responses={201: RoomSerializer, **ERROR_RESPONSES})
    def create(self, request: Request) -> Response:
        serializer = RoomSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        room = services.room_create(owner=request.user, **serializer.validated_data)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: RoomSerializer, **ERROR_RESPONSES})
    def retrieve(self, request: Request, room_id=None) -> Response:
        return Response(RoomSerializer(self.get_object()).data)

    @extend_schema(request=RoomUpdateSerializer, responses={200: RoomSerializer, **ERROR_RESPONSES})
    def partial_update(self, request: Request, room_id=None) -> Response:
        room = self.get_object()
        serializer = RoomUpdateSerializer(room, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        room = services.room_update(room=room, **serializer.validated_data)
        return Response(RoomSerializer(self.get_object()).data)

    @extend_schema(responses={204: None, **ERROR_RESPONSES})
    def destroy(self, request: Request, room_id=None) -> Response:
        services.room_delete(room=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentViewSet(OwnedViewSet):
    """Agents of one of your rooms, listed by position, addressed by their key."""

    serializer_class = AgentSerializer
    lookup_field = "agent_key"
    lookup_url_kwarg = "agent_key"

    def room(self):
        if not hasattr(self, "_room"):
            self._room = selectors.room_get(user=self.request.user, room_id=self.kwargs["room_id"])
        return self._room

    def get_owned_queryset(self):
        return selectors.agent_list(room=self.room())

    @extend_schema(responses={200: AgentSerializer(many=True), **ERROR_RESPONSES})
    def list(self, request: Request, room_id=None) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    @extend_schema(request=AgentSerializer, responses={201: AgentSerializer, **AGENT_ERRORS})
    def create(self, request: Request, room_id=None) -> Response:
        room = self.room()
        serializer = AgentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = services.agent_create(room=room, **serializer.validated_data)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: AgentSerializer, **ERROR_RESPONSES})
    def retrieve(self, request: Request, room_id=None, agent_key=None) -> Response:
        return Response(AgentSerializer(self.get_object()).data)

    @extend_schema(request=AgentUpdateSerializer, responses={200: AgentSerializer, **AGENT_ERRORS})
    def partial_update(self, request: Request, room_id=None, agent_key=None) -> Response:
        agent = self.get_object()
        serializer = AgentUpdateSerializer(agent, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        agent = services.agent_update(agent=agent, **serializer.validated_data)
        return Response(AgentSerializer(agent).data)

    @extend_schema(responses={204: None, **ERROR_RESPONSES})
    def destroy(self, request: Request, room_id=None, agent_key=None) -> Response:
        services.agent_delete(agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
