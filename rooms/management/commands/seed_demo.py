"""Demo data: a user, a room of three agents and a session, printed with the credentials."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from rooms.models import Agent, Room
from sessions_app.models import ChatSession
from usage.services.accounts import credit_account_open

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

    @transaction.atomic
    def handle(self, *args, username: str, **options):
        password = os.environ.get("DEMO_PASSWORD", "pantheon-demo")
        user, _ = get_user_model().objects.get_or_create(username=username)
        # The demo user doubles as the local admin; its password always matches DEMO_PASSWORD.
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        credit_account_open(user=user)
        token, _ = Token.objects.get_or_create(user=user)
        room, _ = Room.objects.get_or_create(
            owner=user, name="Demo room", deleted_at=None, defaults={"description": "A writers' room to try."}
        )
        for position, (key, name, model, prompt) in enumerate(AGENTS):
            Agent.objects.get_or_create(
                room=room,
                agent_key=key,
                deleted_at=None,
                defaults={"name": name, "model_alias": model, "role_prompt": prompt, "position": position},
            )
        session = ChatSession.objects.live().filter(room=room).first() or ChatSession.objects.create(
            room=room, title="First session"
        )
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  admin:    http://{host}:{port}/admin/  ·  API: http://{host}:{port}/api/docs/")
        self.stdout.write(f"  username: {username}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write(f"  token:    {token.key}")
        self.stdout.write(f"  room:     {room.pk}")
        self.stdout.write(f"  session:  {session.pk}")
        self.stdout.write(
            f'  try:      curl -H "Authorization: Bearer {token.key}" -H "Content-Type: application/json" '
            f'-d \'{{"user_input": "@writer @critic open the story", "mode": "manual"}}\' '
            f"http://{host}:{port}/api/v1/sessions/{session.pk}/turns"
        )
