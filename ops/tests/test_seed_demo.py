"""seed_demo: idempotent demo data and credentials that work."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.utils import timezone
from knox.crypto import hash_token
from rest_framework.test import APIClient

from rooms.models import Agent, Room
from sessions_app.models import ChatSession
from usage.models import ApiToken, CreditAccount

pytestmark = pytest.mark.django_db


def seed() -> dict[str, str]:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    lines = [line.split(":", 1) for line in out.getvalue().splitlines() if line.startswith("  ")]
    return {key.strip(): value.strip() for key, value in lines}


def test_seed_demo_makes_a_room_of_three_agents_and_prints_working_credentials():
    printed = seed()
    demo = get_user_model().objects.get(username="demo")
    assert printed["username"] == "demo" and printed["password"] == "pantheon-demo"
    assert authenticate(username="demo", password="pantheon-demo") == demo
    assert ApiToken.objects.get(user=demo).digest == hash_token(printed["token"])  # the token is not stored
    assert CreditAccount.objects.filter(user=demo).exists()

    room = Room.objects.get(pk=printed["room"])
    assert room.owner == demo and room.name == "Demo room"
    agents = list(Agent.objects.live().filter(room=room).values_list("agent_key", "model_alias", "position"))
    assert agents == [("writer", "deepseek", 0), ("researcher", "qwen", 1), ("critic", "gpt-4o-mini", 2)]
    assert all(Agent.objects.live().filter(room=room).values_list("role_prompt", flat=True))
    assert ChatSession.objects.get(pk=printed["session"]).room == room

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {printed['token']}")
    assert client.get(f"/api/v1/rooms/{room.pk}/agents").json()["count"] == 3


def test_seed_demo_prints_the_api_and_login_urls_of_host_and_port(monkeypatch, client):
    monkeypatch.setenv("HOST", "localhost")
    monkeypatch.setenv("PORT", "8123")
    printed = seed()
    assert printed["api"].startswith("http://localhost:8123/api/v1/ ")
    assert printed["login"].startswith("http://localhost:8123/api-auth/login/ ")
    for url in (printed["api"], printed["login"]):
        path = url.split()[0].removeprefix("http://localhost:8123")
        assert client.get(path, HTTP_ACCEPT="text/html").status_code == 200
    monkeypatch.delenv("HOST")
    monkeypatch.delenv("PORT")
    assert seed()["api"].startswith("http://127.0.0.1:8000/api/v1/ ")  # the defaults


def test_seed_demo_is_idempotent_and_completes_what_is_missing():
    first = seed()
    Agent.objects.filter(agent_key="critic").update(deleted_at=timezone.now())
    second = seed()
    assert (second["room"], second["session"]) == (first["room"], first["session"])
    # Only digests are stored, so each run issues a new token and revokes the last run's.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first['token']}")
    assert client.get("/api/v1/auth/me").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {second['token']}")
    assert client.get("/api/v1/auth/me").status_code == 200
    assert Room.objects.count() == 1 and ChatSession.objects.count() == 1
    live = Agent.objects.live().filter(room_id=first["room"])
    assert sorted(live.values_list("agent_key", flat=True)) == ["critic", "researcher", "writer"]


def test_seed_demo_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-secret")
    assert seed()["password"] == "another-demo-secret"
    assert authenticate(username="demo", password="another-demo-secret") is not None


def test_seed_demo_refuses_production_settings(settings):
    from io import StringIO

    import pytest
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.SETTINGS_MODULE = "pantheon.settings.production"
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo", stdout=StringIO())
