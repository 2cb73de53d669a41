"""The admin pages an operator reviews render (with data in them) for a superuser."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_a_turn(client, client_for, turn_post):
    call_command("seed_demo", stdout=StringIO())
    demo = get_user_model().objects.get(username="demo")
    session = demo.rooms.get().sessions.get()
    assert turn_post("@writer hi", session=session, client=client_for(demo)).status_code == 201
    client.force_login(demo)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/rooms/room/",
        "/admin/rooms/agent/",
        "/admin/sessions_app/chatsession/",
        "/admin/sessions_app/turn/",
        "/admin/sessions_app/turncontextaudit/",
        "/admin/usage/llmcallevent/",
        "/admin/usage/llmmodel/",
        "/admin/usage/pricingversion/",
        "/admin/usage/creditaccount/",
        "/admin/usage/creditledgerentry/",
        "/admin/auth/user/",
    ],
)
def test_admin_changelists_render(admin_client_with_a_turn, url):
    assert admin_client_with_a_turn.get(url).status_code == 200


def test_turn_admin_shows_messages_audits_and_usage(admin_client_with_a_turn):
    from sessions_app.models import Turn

    turn = Turn.objects.get()
    page = admin_client_with_a_turn.get(f"/admin/sessions_app/turn/{turn.pk}/change/").content.decode()
    assert "agent_reply @writer deepseek" in page
    assert "@writer hi" in page
