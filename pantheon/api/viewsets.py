"""The one base every ViewSet over user-owned objects derives from.

``get_owned_queryset`` is abstract: a subclass must say how its objects are scoped to
``request.user``, so a view cannot forget the ownership check. A missing, deleted or foreign object
is the same 404.
"""

from rest_framework import viewsets

from pantheon.api.exceptions import NotFound


class OwnedViewSet(viewsets.GenericViewSet):
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_owned_queryset(self):
        raise NotImplementedError("OwnedViewSet subclasses scope their queryset to request.user")

    def get_queryset(self):
        return self.get_owned_queryset()

    def get_object(self):
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        try:
            obj = self.get_queryset().get(**{self.lookup_field: lookup})
        except (self.get_queryset().model.DoesNotExist, ValueError) as exc:
            raise NotFound() from exc
        self.check_object_permissions(self.request, obj)
        return obj
