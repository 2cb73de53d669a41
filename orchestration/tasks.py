"""Celery tasks: thin wrappers around services, idempotent, with an explicit retry policy."""

import logging
import random

from celery import shared_task
from django.db import DatabaseError

from orchestration.errors import SummaryBusy
from orchestration.selectors import summaries_due
from orchestration.services import summaries
from pantheon.observability import SummaryObserved, observe

logger = logging.getLogger(__name__)
# A summary waiting for the session's previous one tries again every few seconds, for up to ~10 min.
SUMMARY_BUSY_RETRY_SECONDS = 3
SUMMARY_BUSY_RETRIES = 200


@shared_task(
    bind=True,
    name="orchestration.tasks.session_summary_generate",
    autoretry_for=(DatabaseError, ConnectionError),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def session_summary_generate(self, session_id: str, through_index: int) -> int | None:
    try:
        summary = summaries.session_summary_generate(session_id=session_id, through_index=through_index)
    except SummaryBusy as exc:
        # Another summary of the session is being made: wait for it, then build on it. Eager (no
        # worker), or after the retries, the summary stays due and the sweep makes it.
        if self.request.is_eager or self.request.retries >= SUMMARY_BUSY_RETRIES:
            logger.info("summary of %s through %s left to the sweep: %s", session_id, through_index, exc)
            return None
        raise self.retry(
            countdown=SUMMARY_BUSY_RETRY_SECONDS + random.uniform(0, 2), max_retries=None
        ) from exc
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
