"""Show (or apply) the differences between the model catalog and the provider's model list."""

from django.core.management.base import BaseCommand, CommandError

from usage.provider import NO_PROVIDER, ProviderLookupError, provider_host, provider_lookup_configured
from usage.services.catalog import catalog_sync


class Command(BaseCommand):
    help = "Compare the catalog with the provider's GET /models; --apply updates it (new price list)."

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="write the changes (default: dry run)")

    def handle(self, *args, apply: bool, **options):
        if not provider_lookup_configured():
            raise CommandError(NO_PROVIDER)
        self.stdout.write(f"Asking {provider_host()} for its model list…")
        self.stdout.flush()
        try:
            report = catalog_sync(apply=apply)
        except ProviderLookupError as exc:
            raise CommandError(f"Could not read the provider's model list: {exc}") from exc
        for change in report.changes:
            self.stdout.write(f"  {change.alias:<14} {change.field}: {change.old} -> {change.new}")
        for alias in report.missing:
            self.stdout.write(self.style.WARNING(f"  {alias:<14} not listed by the provider"))
        if not report.changes:
            self.stdout.write(self.style.SUCCESS("The catalog matches the provider."))
        elif apply:
            published = (
                f"; new active price list {report.new_pricing_version}" if report.new_pricing_version else ""
            )
            self.stdout.write(self.style.SUCCESS(f"Applied {len(report.changes)} change(s){published}."))
        else:
            self.stdout.write(f"{len(report.changes)} change(s); run with --apply to write them.")
