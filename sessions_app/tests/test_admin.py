"""The admin pages an operator reviews render (with data in them) for a superuser."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pantheon.api.exceptions import json_server_error
from rooms.models import Agent, Room
from rooms.services import room_delete
from sessions_app.models import Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditLedgerEntry, LlmCallEvent, LlmModel, PricingVersion

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

    turn = Turn.objects.get()
    page = admin_client_with_a_turn.get(f"/admin/sessions_app/turn/{turn.pk}/change/").content.decode()
    assert "agent_reply @writer deepseek" in page
    assert "@writer hi" in page


def test_usage_review_names_rooms_and_sessions_and_links_each_event_to_its_turn(admin_client_with_a_turn):

    turn = Turn.objects.select_related("session__room").get()
    session, room = turn.session, turn.session.room
    page = admin_client_with_a_turn.get("/admin/usage/llmcallevent/").content.decode()
    assert f'<a href="/admin/rooms/room/{room.pk}/change/">{room.name}</a>' in page
    assert f'<a href="/admin/sessions_app/turn/{turn.pk}/change/">{session.title} #1</a>' in page
    assert str(room.pk) not in page.replace(f"/admin/rooms/room/{room.pk}/", "").replace(
        f"room={room.pk}", ""
    )
    assert f'<a href="?room={room.pk}">{room.name}</a>' in page  # the room filter, by name

    event = LlmCallEvent.objects.get(turn_id=turn.pk)
    detail = admin_client_with_a_turn.get(f"/admin/usage/llmcallevent/{event.pk}/change/").content.decode()
    assert f'<a href="/admin/rooms/room/{room.pk}/change/">{room.name}</a>' in detail
    assert f'<a href="/admin/sessions_app/chatsession/{session.pk}/change/">{session.title}</a>' in detail
    assert f'<a href="/admin/sessions_app/turn/{turn.pk}/change/">{session.title} #1</a>' in detail


def test_usage_review_marks_deleted_rooms(admin_client_with_a_turn):

    room = Room.objects.get()
    room_delete(room=room)
    page = admin_client_with_a_turn.get("/admin/usage/llmcallevent/").content.decode()
    assert f"{room.name} (deleted)" in page


def test_usage_review_looks_names_up_once_per_page_not_per_row(admin_client):

    def add_events(n):
        for _ in range(n):
            session = SessionFactory()
            LlmCallEvent.objects.create(
                user=session.room.owner,
                room_id=session.room_id,
                session_id=session.pk,
                purpose="agent_reply",
                model_alias="deepseek",
                provider_model="deepseek/deepseek-chat",
            )

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get("/admin/usage/llmcallevent/").status_code == 200
        return len(captured)

    add_events(2)
    few = queries()
    add_events(8)
    assert queries() == few


@pytest.mark.parametrize("model", ["sessionsummary", "turncontextaudit", "turn"])
def test_engine_records_are_read_only_in_admin(admin_client_with_a_turn, model):
    base = f"/admin/sessions_app/{model}/"
    assert admin_client_with_a_turn.get(f"{base}add/").status_code == 403
    assert admin_client_with_a_turn.post(f"{base}add/", {}).status_code == 403
    listing = admin_client_with_a_turn.get(base).content.decode()
    assert f'href="{base}add/"' not in listing and "delete_selected" not in listing


def test_turn_page_is_a_view_not_a_form(admin_client_with_a_turn):

    turn = Turn.objects.get()
    url = f"/admin/sessions_app/turn/{turn.pk}/change/"
    assert 'name="_save"' not in admin_client_with_a_turn.get(url).content.decode()
    assert admin_client_with_a_turn.post(url, {"user_input": "changed"}).status_code == 403
    assert (
        admin_client_with_a_turn.post(
            f"/admin/sessions_app/turn/{turn.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )


def test_a_wrong_admin_url_is_an_html_page_inside_the_admin(admin_client_with_a_turn):
    response = admin_client_with_a_turn.get("/admin/usage/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Page not found" in page and 'href="/admin/"' in page


def test_api_404_stays_json(client):
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_admin_server_errors_are_an_html_page(rf):

    admin_error = json_server_error(rf.get("/admin/usage/llmcallevent/"))
    assert admin_error.status_code == 500 and admin_error["Content-Type"].startswith("text/html")
    assert b"Server error (500)" in admin_error.content
    api_error = json_server_error(rf.get("/api/v1/rooms"))
    assert api_error.status_code == 500 and api_error["Content-Type"] == "application/json"


def test_the_ledger_links_each_turn_debit_to_its_turn(admin_client_with_a_turn):
    turn = Turn.objects.select_related("session").get()
    entry = CreditLedgerEntry.objects.get(turn_id=turn.pk, kind=CreditLedgerEntry.Kind.TURN_DEBIT)
    link = f'<a href="/admin/sessions_app/turn/{turn.pk}/change/">{turn.session.title} #1</a>'
    assert link in admin_client_with_a_turn.get("/admin/usage/creditledgerentry/").content.decode()
    detail = admin_client_with_a_turn.get(f"/admin/usage/creditledgerentry/{entry.pk}/change/")
    assert link in detail.content.decode()


def test_room_session_and_turn_link_to_each_other(admin_client_with_a_turn):
    turn = Turn.objects.select_related("session__room").get()
    session, room = turn.session, turn.session.room
    room_page = admin_client_with_a_turn.get(f"/admin/rooms/room/{room.pk}/change/").content.decode()
    assert f'<a href="/admin/sessions_app/chatsession/{session.pk}/change/">{session.title}</a>' in room_page
    assert f'href="/admin/sessions_app/chatsession/?room__id__exact={room.pk}"' in room_page
    session_page = admin_client_with_a_turn.get(f"/admin/sessions_app/chatsession/{session.pk}/change/")
    session_html = session_page.content.decode()
    assert f'<a href="/admin/rooms/room/{room.pk}/change/">{room.name}</a>' in session_html
    assert f"/admin/sessions_app/turn/{turn.pk}/change/" in session_html  # its turns, each opened


def test_an_agents_model_alias_is_a_choice_of_the_active_catalog(admin_client_with_a_turn):
    agent = Agent.objects.filter(deleted_at=None).first()
    LlmModel.objects.filter(alias="qwen").update(is_active=False)
    page = admin_client_with_a_turn.get(f"/admin/rooms/agent/{agent.pk}/change/").content.decode()
    assert '<select name="model_alias"' in page
    active = set(LlmModel.objects.filter(is_active=True).values_list("alias", flat=True))
    assert active and all(f'<option value="{alias}"' in page for alias in active)
    assert '<option value="qwen"' not in page or agent.model_alias == "qwen"
    form = {
        "agent_key": agent.agent_key,
        "name": agent.name,
        "room": agent.room_id,
        "model_alias": "no-such-model",
        "position": agent.position,
        "role_prompt": agent.role_prompt,
    }
    response = admin_client_with_a_turn.post(f"/admin/rooms/agent/{agent.pk}/change/", form)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    agent.refresh_from_db()
    assert agent.model_alias != "no-such-model"


def test_admin_labels_read_as_words(admin_client_with_a_turn):
    turn = Turn.objects.select_related("session").get()
    assert str(turn) == f"Turn 1 of {turn.session.title}"
    assert str(Turn(turn_index=2, session=SessionFactory(title=""))) == "Turn 2 of an untitled session"
    turn_page = admin_client_with_a_turn.get(f"/admin/sessions_app/turn/{turn.pk}/change/").content.decode()
    assert f"Turn 1 of {turn.session.title}" in turn_page
    event = LlmCallEvent.objects.filter(turn_id=turn.pk).first()
    page = admin_client_with_a_turn.get(f"/admin/usage/llmcallevent/{event.pk}/change/").content.decode()
    assert "Cost (USD)" in page and "Latency (ms)" in page and "Provider final cost (USD)" in page
    assert "Cost usd" not in page and "Latency ms" not in page
    rollups = admin_client_with_a_turn.get("/admin/usage/usagedailyrollup/").content.decode()
    assert "Cost usd" not in rollups
    draft = PricingVersion.objects.create(name="a draft")
    draft_page = admin_client_with_a_turn.get(
        f"/admin/usage/pricingversion/{draft.pk}/change/"
    ).content.decode()
    assert "None: a draft" not in draft_page
    active = PricingVersion.objects.get(is_active=True)
    active_page = admin_client_with_a_turn.get(
        f"/admin/usage/pricingversion/{active.pk}/change/"
    ).content.decode()
    assert "Input (USD per million tokens)" in active_page
