"""Demo data: a user, a room of three agents and a session, printed with the credentials."""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pantheon.errors import ApplicationError
from rooms import selectors, services
from rooms.models import Room
from sessions_app.models import ChatSession
from sessions_app.services import session_create
from usage.models import ApiToken
from usage.services.accounts import credit_account_open
from usage.services.tokens import api_token_issue

DEMO_ROOM = "Demo room"
DEMO_TOKEN_NAME = "seed_demo"  # noqa: S105 (a name, not a secret)

AGENTS = [
    (
        "writer",
        "Writer",
        "deepseek",
        "You are a novelist. Write vivid, concrete prose and propose next scenes.",
    ),
    (
        "researcher",
        "Researcher",
        "qwen",
        "You check facts and bring precise, sourced background to the story.",
    ),
    (
        "critic",
        "Critic",
        "gpt-4o-mini",
        "You critique drafts: what works, what doesn't, and one fix at a time.",
    ),
]


class Command(BaseCommand):
    help = "Create (idempotently) a demo user with a room of three agents and a session; print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="seed even under production settings (creates a superuser with a known password)",
        )

    @transaction.atomic
    def handle(self, *args, username: str, allow_production: bool, **options):
        if settings.SETTINGS_MODULE.endswith(".production") and not allow_production:
            raise CommandError(
                "Refusing to seed demo data under production settings: it creates a superuser with a "
                "known password. Pass --allow-production if you really mean it."
            )
        password = os.environ.get("DEMO_PASSWORD", "pantheon-demo")
        user, _ = get_user_model().objects.get_or_create(username=username)
        # The demo user doubles as the local admin; its password always matches DEMO_PASSWORD.
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        credit_account_open(user=user)
        # Only a token's digest is stored: each run issues a new one (and drops the last run's).
        ApiToken.objects.filter(user=user, name=DEMO_TOKEN_NAME).delete()
        _, token = api_token_issue(user=user, name=DEMO_TOKEN_NAME)
        room = self._room(user)
        session = ChatSession.objects.live().filter(room=room).first() or session_create(
            room=room, title="First session"
        )
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        success = self.style.SUCCESS
        self.stdout.write(success("Demo data ready."))
        site = f"http://{host}:{port}"
        self.stdout.write(f"  api:      {site}/api/v1/  (browsable; reference: {site}/api/docs/)")
        self.stdout.write(f"  login:    {site}/api-auth/login/  (admin: {site}/admin/login/)")
        self.stdout.write(success(f"  username: {username}"))
        self.stdout.write(success(f"  password: {password}"))
        self.stdout.write(success(f"  token:    {token}"))
        self.stdout.write(success(f"  room:     {room.pk}"))
        self.stdout.write(f"  session:  {session.pk}")
        self.stdout.write(
            f'  try:      curl -H "Authorization: Bearer {token}" -H "Content-Type: application/json" '
            f'-d \'{{"user_input": "@writer @critic open the story", "mode": "manual"}}\' '
            f"{site}/api/v1/sessions/{session.pk}/turns"
        )

    def _room(self, user) -> Room:
        """The demo user's live demo room with its three agents, made or completed through services."""
        room = selectors.room_list(user=user).filter(name=DEMO_ROOM).order_by("created_at").first()
        if room is None:
            room = services.room_create(owner=user, name=DEMO_ROOM, description="A writers' room to try.")
        live_keys = set(selectors.agent_list(room=room).values_list("agent_key", flat=True))
        try:
            for position, (key, name, model, prompt) in enumerate(AGENTS):
                if key not in live_keys:
                    services.agent_create(
                        room=room,
                        agent_key=key,
                        name=name,
                        model_alias=model,
                        role_prompt=prompt,
                        position=position,
                    )
        except ApplicationError as exc:  # e.g. a demo model missing from the catalog
            raise CommandError(f"Cannot seed the demo room: {exc.message}") from exc
        return room
