"""The one base every ViewSet over user-owned objects derives from, and the nested-room helper.

Ownership is enforced here, once, so no view can forget it:

- ``OwnedViewSet.get_owned_queryset`` is abstract: a subclass must say how its objects are scoped to
  ``request.user``. ``get_queryset`` (used by ``list`` and ``get_object``) is sealed: a subclass that
  overrides it, or sets a class-level ``queryset`` DRF would fall back on, is refused at import time.
- ``get_object`` turns a missing, deleted, foreign or malformed id into the same 404, so a client can
  never tell "not yours" from "does not exist".
- Routes nested under a room (``/rooms/{room_id}/agents``, ``/rooms/{room_id}/sessions``) add
  ``RoomNestedMixin`` and build their queryset from ``get_room()``: a live room the user owns, or 404
  before anything else happens (so an empty list never leaks that a foreign room exists).

PUT is not part of the API contract: updates are PATCH only.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from rest_framework import viewsets
from rest_framework.reverse import reverse

from pantheon.errors import NotFound
from rooms.models import Room
from rooms.selectors import room_get


class OwnedViewSet(viewsets.GenericViewSet):
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # What the view lists: the schema generator, which has no user and no URL, gets an empty
    # queryset of it to read the model (filters, path parameters) from.
    model: type[Model] | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__ or cls.__dict__.get("queryset") is not None:
            raise TypeError(
                f"{cls.__name__}: scope objects in get_owned_queryset(), not get_queryset()/queryset, "
                "so the ownership filter cannot be bypassed"
            )

    def get_owned_queryset(self) -> QuerySet:
        """The objects ``self.request.user`` may see through this view (live ones only)."""
        raise NotImplementedError(f"{type(self).__name__} must scope its queryset to request.user")

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False) and self.model is not None:
            return self.model.objects.none()
        return self.get_owned_queryset()

    def get_object(self):
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        queryset = self.filter_queryset(self.get_queryset())
        try:
            obj = queryset.get(**{self.lookup_field: lookup})
        except (queryset.model.DoesNotExist, ValueError, DjangoValidationError) as exc:
            raise NotFound() from exc
        self.check_object_permissions(self.request, obj)
        return obj


class RoomNestedMixin:
    """For routes under ``/rooms/{room_id}/``: the URL's room, if it is live and the user's, else 404.

    The room is fetched once per request and cached on the view.
    """

    room_url_kwarg = "room_id"

    def breadcrumb_parents(self) -> list[tuple[str, str]]:
        return room_breadcrumbs(self.request, self.get_room())

    def get_room(self) -> Room:
        if not hasattr(self, "_room"):
            self._room = room_get(user=self.request.user, room_id=self.kwargs[self.room_url_kwarg])
        return self._room


def room_breadcrumbs(request, room: Room) -> list[tuple[str, str]]:
    """The browsable API's trail to a room: the room list, then the room."""
    return [
        ("Rooms", reverse("room-list", request=request)),
        (room.name, reverse("room-detail", kwargs={"room_id": room.pk}, request=request)),
    ]
