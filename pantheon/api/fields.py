"""Serializer fields shared by the apps' APIs."""

from operator import attrgetter

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse


@extend_schema_field(OpenApiTypes.URI)
class LinkField(serializers.Field):
    """A read-only link to another endpoint of the object: ``LinkField("session-list",
    room_id="pk")`` reverses that URL name with the object's ``pk`` as ``room_id``; a dotted
    attribute (``room_id="session.room_id"``) follows a relation. Absolute when the serializer has
    the request in its context, a path otherwise. A link of an object that may lack its target
    (``allow_null=True``) is null when an attribute is None."""

    def __init__(self, view_name: str, *, allow_null: bool = False, **url_kwargs: str) -> None:
        self.view_name, self.url_kwargs = view_name, url_kwargs
        super().__init__(read_only=True, source="*", allow_null=allow_null)

    def to_representation(self, obj) -> str | None:
        kwargs = {name: attrgetter(attr)(obj) for name, attr in self.url_kwargs.items()}
        if self.allow_null and any(value is None for value in kwargs.values()):
            return None
        return reverse(self.view_name, kwargs=kwargs, request=self.context.get("request"))
