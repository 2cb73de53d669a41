"""Celery tasks of usage: thin wrappers around services."""

from celery import shared_task
from django.db import DatabaseError

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
