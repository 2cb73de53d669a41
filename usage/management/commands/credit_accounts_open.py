"""Give every user without a credit account one, with the opening grant (e.g. after createsuperuser)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from usage.services.accounts import credit_account_open


class Command(BaseCommand):
    help = "Open a credit account (with the opening grant) for every user that has none."

    def handle(self, *args, **options):
        missing = get_user_model().objects.filter(credit_account__isnull=True)
        count = 0
        for user in missing.iterator():
            credit_account_open(user=user)
            count += 1
        self.stdout.write(self.style.SUCCESS(f"Opened {count} credit account(s)."))
