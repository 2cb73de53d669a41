"""Reconcile usage with the provider on demand, and rebuild the daily rollups."""

import argparse
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pantheon.progress import Progress, logs_held
from usage.provider import NO_PROVIDER, provider_host, provider_lookup_configured
from usage.services.reconciliation import usage_reconcile


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, not {value!r}")
    return number


class Command(BaseCommand):
    help = "Compare recorded LLM usage with the provider's figures, flag drift, rebuild daily rollups."

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=positive_int, default=48, help="how far back to look (default 48)"
        )
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=2000,
            help="at most this many provider lookups in this run (default 2000); the rest waits",
        )
        parser.add_argument(
            "--fail-on-drift", action="store_true", help="exit non-zero if any drift is found"
        )

    def handle(self, *args, **options):
        # The run's log lines (one per refused lookup, the summary) follow the report, on stderr.
        with logs_held("usage"):
            self._reconcile(**options)

    def _reconcile(self, *, hours: int, limit: int, fail_on_drift: bool, **options):
        since = timezone.now() - timedelta(hours=hours)
        if provider_lookup_configured():
            self.stdout.write(
                f"Asking {provider_host()} for the final cost of each call since {since:%Y-%m-%d %H:%M %Z} "
                f"(at most {limit} lookups)…"
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    "No provider is configured: nothing can be looked up, only the rollups rebuilt."
                )
            )
        report = usage_reconcile(
            since=since, limit=limit, progress=Progress(self.stdout, label="generations checked")
        )
        for name, value in report.__dict__.items():
            self.stdout.write(f"  {name:<15} {value}")
        if report.capped:
            self.stdout.write(
                self.style.WARNING(
                    f"The --limit of {limit} lookups was reached: {report.still_pending} event(s) are still "
                    "pending. Run again (or raise --limit) to check them."
                )
            )
        elif report.still_pending and provider_lookup_configured():
            self.stdout.write(
                self.style.WARNING(
                    f"{report.still_pending} event(s) are still pending: the provider did not answer "
                    "(see the log); the next run retries them."
                )
            )
        if not provider_lookup_configured():
            raise CommandError(NO_PROVIDER)
        if report.drift and fail_on_drift:
            raise CommandError(f"{report.drift} event(s) drift beyond the tolerance")
        style = self.style.WARNING if report.drift or report.missing else self.style.SUCCESS
        self.stdout.write(style(f"Reconciled {report.checked} event(s) over the last {hours} h."))
