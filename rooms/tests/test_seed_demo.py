from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from rooms.models import Agent, Room
from sessions_app.models import ChatSession

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_prints_working_credentials():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    assert Room.objects.filter(name="Demo room").count() == 1
    assert list(Agent.objects.live().order_by("position").values_list("agent_key", flat=True)) == [
        "writer",
        "researcher",
        "critic",
    ]
    assert ChatSession.objects.count() == 1
    text = out.getvalue()
    assert "username: demo" in text and "password: pantheon-demo" in text and "token:" in text
    assert authenticate(username="demo", password="pantheon-demo") is not None
