"""Reconcile usage with the provider on demand, and rebuild the daily rollups."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from usage.services.reconciliation import usage_reconcile


class Command(BaseCommand):
    help = "Compare recorded LLM usage with the provider's figures, flag drift, rebuild daily rollups."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, default=48, help="how far back to look (default 48)")
        parser.add_argument(
            "--fail-on-drift", action="store_true", help="exit non-zero if any drift is found"
        )

    def handle(self, *args, hours: int, fail_on_drift: bool, **options):
        report = usage_reconcile(since=timezone.now() - timedelta(hours=hours))
        for name, value in report.__dict__.items():
            self.stdout.write(f"  {name:<15} {value}")
        if report.drift and fail_on_drift:
            raise CommandError(f"{report.drift} event(s) drift beyond the tolerance")
        style = self.style.WARNING if report.drift or report.missing else self.style.SUCCESS
        self.stdout.write(style(f"Reconciled {report.checked} event(s) over the last {hours} h."))
