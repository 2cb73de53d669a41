"""Reads of the turn engine: what a turn may show of a session's past, and the summaries due."""

import uuid

from django.conf import settings
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum, Window
from django.db.models.functions import Coalesce, RowNumber

from orchestration.context import HistoryTurn, SessionContext
from sessions_app.models import ChatSession, SessionSummary, Turn


def session_context_load(
    *, session_id, next_turn_index: int, max_history_tokens: int, summary_requested_through: int = 0
) -> SessionContext:
    """The latest summary, the history after it and the session's anchor.

    History is fetched newest first with a running token total computed by the database, and only
    the turns that could still fit ``max_history_tokens`` (plus the most recent ones) are returned:
    a session of thousands of turns costs the same queries and about the same rows as a short one.
    Failed turns are never part of the context.
    """
    summary = (
        SessionSummary.objects.filter(session_id=session_id)
        .order_by("-covers_through_turn_index")
        .only("summary_text", "covers_through_turn_index")
        .first()
    )
    covered = summary.covers_through_turn_index if summary else 0

    newest_first = F("turn_index").desc()
    rows = list(
        Turn.objects.filter(session_id=session_id, turn_index__gt=covered)
        .exclude(status=Turn.Status.FAILED)
        .annotate(
            running_tokens=Window(Sum("context_tokens"), order_by=newest_first),
            recency=Window(RowNumber(), order_by=newest_first),
            all_tokens=Window(Sum("context_tokens")),
            all_count=Window(Count("id")),
        )
        .filter(
            Q(running_tokens__lte=max_history_tokens) | Q(recency__lte=settings.CONTEXT_RECENT_TURNS_TO_KEEP)
        )
        .order_by("turn_index")
        .values("turn_index", "user_input", "assistant_output", "context_tokens", "all_tokens", "all_count")
    )
    anchor = (
        Turn.objects.filter(session_id=session_id)
        .exclude(status=Turn.Status.FAILED)
        .order_by("turn_index")
        .values("turn_index", "user_input")
        .first()
    )
    return SessionContext(
        summary_text=summary.summary_text if summary else None,
        summary_covers_through=covered,
        history=tuple(
            HistoryTurn(r["turn_index"], r["user_input"], r["assistant_output"], r["context_tokens"])
            for r in rows
        ),
        history_total_tokens=rows[0]["all_tokens"] if rows else 0,
        history_total_count=rows[0]["all_count"] if rows else 0,
        anchor_turn_index=anchor["turn_index"] if anchor else None,
        anchor_text=anchor["user_input"] if anchor else None,
        next_turn_index=next_turn_index,
        summary_requested_through=max(summary_requested_through, covered),
    )


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
