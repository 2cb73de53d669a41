"""Celery tasks of usage: thin wrappers around services."""

from celery import shared_task
from django.db import DatabaseError

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
