"""Query-string filters of the room and agent lists (django-filter)."""

import django_filters

from rooms.models import Room


class RoomFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Rooms whose name contains this.")

    class Meta:
        model = Room
        fields = ["name"]
