"""Query-string filters of the session, turn and usage lists (django-filter). Dates are whole days,
inclusive, in the server's time zone: ``?created_from=2026-11-01&created_to=2026-11-30``."""

import django_filters

from sessions_app.models import ChatSession, Turn
from usage.models import LlmCallEvent


class CreatedBetweenFilterSet(django_filters.FilterSet):
    created_from = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", help_text="Created on or after this day."
    )
    created_to = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", help_text="Created on or before this day."
    )


class SessionFilter(django_filters.FilterSet):
    title = django_filters.CharFilter(
        lookup_expr="icontains", help_text="Sessions whose title contains this."
    )

    class Meta:
        model = ChatSession
        fields = ["title"]


class TurnFilter(CreatedBetweenFilterSet):
    status = django_filters.ChoiceFilter(choices=Turn.Status.choices)
    mode = django_filters.ChoiceFilter(choices=Turn.Mode.choices)

    class Meta:
        model = Turn
        fields = ["status", "mode", "created_from", "created_to"]


class UsageEventFilter(CreatedBetweenFilterSet):
    purpose = django_filters.ChoiceFilter(choices=LlmCallEvent.Purpose.choices)
    model = django_filters.CharFilter(field_name="model_alias", help_text="A catalog alias, e.g. `deepseek`.")
    billable = django_filters.BooleanFilter(help_text="`true`: what you were charged for.")
    status = django_filters.ChoiceFilter(choices=LlmCallEvent.Status.choices)

    class Meta:
        model = LlmCallEvent
        fields = ["purpose", "model", "billable", "status", "created_from", "created_to"]
