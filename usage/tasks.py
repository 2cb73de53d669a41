"""Celery tasks of usage: thin wrappers around services."""

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, transaction

from usage.services.budgets import BudgetStatus, budget_webhook_post
from usage.services.holds import credit_holds_sweep as credit_holds_sweep_service
from usage.services.reconciliation import usage_reconcile as usage_reconcile_service


@shared_task(
    name="usage.tasks.usage_reconcile",
    autoretry_for=(DatabaseError,),
    retry_backoff=30,
    max_retries=3,
    acks_late=True,
)
def usage_reconcile() -> dict:
    report = usage_reconcile_service()
    return report.__dict__


@shared_task(
    name="usage.tasks.credit_holds_sweep", autoretry_for=(DatabaseError,), max_retries=3, acks_late=True
)
def credit_holds_sweep() -> dict:
    """Free the credit holds of work that died (past their expiry)."""
    swept = credit_holds_sweep_service()
    return {"turn_holds": swept.turn_holds, "summary_holds": swept.summary_holds}


@shared_task(
    name="usage.tasks.budget_webhook_send",
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=24,
    acks_late=True,
)
def budget_webhook_send(*, payload: dict) -> None:
    """POST a soft-limit notice to ``BUDGET_WEBHOOK_URL``, signed; retried for about a day while the
    hook is down (``acks_late``: a worker killed mid-send leaves it queued)."""
    budget_webhook_post(payload=payload)


def budget_webhook_enqueue(status: BudgetStatus) -> None:
    """Send the notice after the caller's transaction commits (nothing to send if it rolls back)."""
    if not settings.BUDGET_WEBHOOK_URL:
        return
    payload = {"event": "budget.soft_limit", "user_id": status.budget.user_id, "budget": status.as_dict()}
    transaction.on_commit(lambda: budget_webhook_send.delay(payload=payload))
