"""Celery tasks: thin wrappers around services, idempotent, with an explicit retry policy."""

import logging

from celery import shared_task
from django.db import DatabaseError

from orchestration.selectors import summaries_due
from orchestration.services import summaries
from pantheon.observability import SummaryObserved, observe

logger = logging.getLogger(__name__)


@shared_task(
    name="orchestration.tasks.session_summary_generate",
    autoretry_for=(DatabaseError, ConnectionError),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def session_summary_generate(session_id: str, through_index: int) -> int | None:
    summary = summaries.session_summary_generate(session_id=session_id, through_index=through_index)
    return summary.pk if summary else None


@shared_task(name="orchestration.tasks.summaries_due_sweep", acks_late=True)
def summaries_due_sweep() -> int:
    """Enqueue every summary that is due but was never produced."""
    due = summaries_due()
    for session_id, through in due:
        observe(SummaryObserved("due", str(session_id), through, swept=True))
        session_summary_generate.delay(str(session_id), through)
    if due:
        logger.info("summaries sweep enqueued %d due summaries", len(due))
    return len(due)
