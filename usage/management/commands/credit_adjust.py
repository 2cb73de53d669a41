"""Top up (or take back) a user's credits from a shell: one ``adjustment`` ledger entry."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from pantheon.errors import ApplicationError
from usage.formatting import credits_display
from usage.models import CreditAccount
from usage.services.accounts import credit_adjust


class Command(BaseCommand):
    help = (
        "Adjust a user's credit balance: --amount 500 adds, --amount -200 takes back (never more than "
        "is available). Writes an `adjustment` ledger entry with the note (and --by, the operator)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username of the account to adjust")
        parser.add_argument("--amount", required=True, help="credits, signed: 500, -200, 12.5")
        parser.add_argument("--note", required=True, help="why (kept in the ledger)")
        parser.add_argument("--by", help="username of the operator making the change (recorded)")

    def handle(self, *args, user: str, amount: str, note: str, by: str | None, **options):
        users = get_user_model().objects
        target = users.filter(username__iexact=user).first()
        if target is None:
            raise CommandError(f"No user '{user}'.")
        actor = None
        if by:
            actor = users.filter(username__iexact=by, is_staff=True).first()
            if actor is None:
                raise CommandError(f"--by '{by}' is not a staff user.")
        try:
            entry = credit_adjust(user=target, amount=amount, note=note, actor=actor)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        account = CreditAccount.objects.get(user=target)
        self.stdout.write(
            self.style.SUCCESS(
                f"{target.username}: {credits_display(entry.amount, signed=True)} credits "
                f"(ledger entry {entry.pk}). Balance {credits_display(account.balance)}, "
                f"held {credits_display(account.held)}, available {credits_display(account.available)}."
            )
        )
