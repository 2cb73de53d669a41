"""Serializer fields shared by the apps' APIs."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse


@extend_schema_field(OpenApiTypes.URI)
class LinkField(serializers.Field):
    """A read-only link to another endpoint of the object: ``LinkField("session-list",
    room_id="pk")`` reverses that URL name with the object's ``pk`` as ``room_id``. Absolute when the
    serializer has the request in its context, a path otherwise."""

    def __init__(self, view_name: str, **url_kwargs: str) -> None:
        self.view_name, self.url_kwargs = view_name, url_kwargs
        super().__init__(read_only=True, source="*")

    def to_representation(self, obj) -> str:
        kwargs = {name: getattr(obj, attr) for name, attr in self.url_kwargs.items()}
        return reverse(self.view_name, kwargs=kwargs, request=self.context.get("request"))
