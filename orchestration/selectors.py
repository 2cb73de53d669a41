"""Reads of the turn engine: what a turn may show of a session's past, and the summaries due."""

import uuid

from django.db.models import F, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce

from sessions_app.models import ChatSession, SessionSummary


def summaries_due() -> list[tuple[uuid.UUID, int]]:
    """Sessions whose requested summary index is past their latest summary."""
    latest = (
        SessionSummary.objects.filter(session=OuterRef("pk"))
        .values("session")
        .annotate(m=Max("covers_through_turn_index"))
        .values("m")
    )
    due = (
        ChatSession.objects.live()
        .filter(summary_due_through__isnull=False)
        .annotate(covered=Coalesce(Subquery(latest), 0))
        .filter(summary_due_through__gt=F("covered"))
        .values_list("pk", "summary_due_through")
    )
    return list(due)
