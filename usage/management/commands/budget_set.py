"""Set an operator's budget from a shell (docs/budgets.md)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from pantheon.errors import ApplicationError
from usage.formatting import credits_display
from usage.services.budgets import budget_operator_set, budget_statuses


class Command(BaseCommand):
    help = (
        "Set a spend limit in credits per day, week or month on a user's turns: all of them, one room's "
        "(--room) or one API key's (--api-key), optionally one model alias's calls (--model). Setting it "
        "again for the same user, target, period and model changes its limit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username whose turns it limits")
        parser.add_argument("--period", required=True, choices=["day", "week", "month"])
        parser.add_argument("--limit", required=True, help="credits per period, e.g. 500 or 12.5")
        parser.add_argument("--room", help="a room's id: only that room's turns")
        parser.add_argument("--api-key", type=int, help="an API key's id: only the turns made through it")
        parser.add_argument("--model", default="", help="a model alias: only that model's calls")

    def handle(self, *args, user: str, period: str, limit: str, room, api_key, model: str, **options):
        target = get_user_model().objects.filter(username__iexact=user).first()
        if target is None:
            raise CommandError(f"No user '{user}'.")
        try:
            budget, created = budget_operator_set(
                user=target,
                period=period,
                limit_credits=limit,
                room_id=room,
                api_key_id=api_key,
                model_alias=model,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        [status] = budget_statuses([budget])
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Made' if created else 'Changed'} budget {budget.pk}: {target.username}, "
                f"{budget.scope_label}, {credits_display(budget.limit_credits)} credits per {period}. "
                "This period: "
                f"{credits_display(status.spent)} spent, {credits_display(status.held)} held, "
                f"{credits_display(status.remaining)} remaining; resets {status.resets_at.isoformat()}."
            )
        )
