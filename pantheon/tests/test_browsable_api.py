"""The browsable API flows for a person at a browser: forms after every response, who is logged in,
links between related resources, forms for register and token, and `/` leading to the API."""

import pytest
from rest_framework.test import APIClient

from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db
HTML = {"HTTP_ACCEPT": "text/html"}


def turn_form(page: str) -> str:
    start = page.index('method="POST" enctype="multipart/form-data"')
    return page[start : page.index("</form>", start)]


def test_the_turn_form_is_there_after_every_turn(browser, session):
    url = f"/api/v1/sessions/{session.pk}/turns"
    for text in ("@writer first", "@writer second"):
        response = browser.post(url, {"user_input": text, "mode": "manual"}, **HTML)
        assert response.status_code == 201
        form = turn_form(response.content.decode())
        assert '<textarea name="user_input"' in form and text not in form  # empty, ready for the next
        assert '<select class="form-control" name="mode"' in form and 'value="roundtable"' in form
    assert session.turns.count() == 2


def test_the_turn_form_is_on_the_list_page_too(browser, session):
    form = turn_form(browser.get(f"/api/v1/sessions/{session.pk}/turns", **HTML).content.decode())
    assert '<textarea name="user_input"' in form and 'name="mode"' in form


def test_a_refused_turn_keeps_what_was_typed(browser, session):
    response = browser.post(
        f"/api/v1/sessions/{session.pk}/turns", {"user_input": "nobody tagged", "mode": "manual"}, **HTML
    )
    assert response.status_code == 422
    assert "nobody tagged</textarea>" in turn_form(response.content.decode())


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/health"])
def test_pages_without_credentials_still_show_who_is_logged_in(browser, user, path):
    page = browser.get(path, **HTML).content.decode()
    assert user.username in page and "/api-auth/logout/" in page
    assert "/api-auth/login/" not in page


def test_an_anonymous_visitor_is_offered_to_log_in(client):
    assert "/api-auth/login/" in client.get("/api/v1/", **HTML).content.decode()


def test_a_room_links_its_agents_and_sessions_and_a_session_its_turns_summaries_and_usage(
    api_client, session
):
    room = api_client.get(f"/api/v1/rooms/{session.room_id}").json()
    assert room["url"].endswith(f"/api/v1/rooms/{session.room_id}")
    assert api_client.get(room["agents_url"]).json()["results"][0]["agent_key"] == "writer"
    sessions = api_client.get(room["sessions_url"]).json()["results"]
    assert [s["id"] for s in sessions] == [str(session.pk)]
    links = sessions[0]
    assert api_client.get(links["room_url"]).json()["id"] == str(session.room_id)
    assert api_client.get(links["url"]).json()["id"] == str(session.pk)
    for name in ("turns_url", "summaries_url", "usage_url"):
        assert links[name].startswith("http://testserver/api/v1/sessions/")
        assert api_client.get(links[name]).status_code == 200, name
    assert api_client.get(room["agents"][0]["url"]).json()["agent_key"] == "writer"


def test_the_site_root_leads_to_the_api():
    response = APIClient().get("/")
    assert response.status_code == 302 and response["Location"] == "/api/v1/"


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/api/v1/auth/register", ["username", "password", "email"]),
        ("/api/v1/auth/token", ["username", "password"]),
    ],
)
def test_register_and_token_have_html_forms(client, path, fields):
    page = client.get(path, **HTML).content.decode()
    for field in fields:
        assert f'name="{field}"' in page, field
    assert 'type="password"' in page


def test_registering_through_the_html_form(client):
    response = client.post(
        "/api/v1/auth/register", {"username": "newcomer", "password": "a-long-passphrase-42"}, **HTML
    )
    assert response.status_code == 201 and "newcomer" in response.content.decode()
    token = client.post(
        "/api/v1/auth/token", {"username": "newcomer", "password": "a-long-passphrase-42"}, **HTML
    )
    assert token.status_code == 200 and "token" in token.content.decode()


def test_a_turn_has_a_url_of_its_own_linking_back_to_its_session(api_client, session, turn_post):
    posted = turn_post("@writer hello").json()
    turn = api_client.get(posted["url"]).json()
    assert turn["id"] == posted["id"] and turn["messages"][0]["content"] == "@writer hello"
    assert api_client.get(turn["session_url"]).json()["id"] == str(session.pk)
    listed = api_client.get(f"/api/v1/sessions/{session.pk}/turns").json()["results"][0]
    assert listed["url"] == turn["url"]
    event = api_client.get(f"/api/v1/sessions/{session.pk}/usage").json()["results"][0]
    assert api_client.get(event["turn_url"]).json()["id"] == posted["id"]


def test_a_turn_of_another_session_or_user_is_a_404(api_client, other_client, session, turn_post):
    url = turn_post("@writer hello").json()["url"]
    assert other_client.get(url).status_code == 404
    other = SessionFactory(room=session.room)
    assert api_client.get(url.replace(str(session.pk), str(other.pk))).status_code == 404


def test_manual_mode_names_the_tags_that_asked_nobody(turn_post):
    body = turn_post("@writer @ghost and @Writer, then @nobody").json()
    assert body["responding_agent_keys"] == ["writer"]  # only valid tags dispatch
    assert body["ignored_tags"] == ["ghost", "nobody"]
    assert turn_post("Both of you", mode="roundtable").json()["ignored_tags"] == []


def test_the_browsable_turn_form_offers_no_stream(browser, session):
    form = turn_form(browser.get(f"/api/v1/sessions/{session.pk}/turns", **HTML).content.decode())
    assert 'name="user_input"' in form and 'name="stream"' not in form


def test_pages_carry_pantheons_name_not_drfs(browser, client):
    page = browser.get("/api/v1/", **HTML).content.decode()
    assert "<title>Pantheon API</title>" in page and "Pantheon API</a>" in page
    assert "Django REST framework" not in page and "Api Root" not in page
    login = client.get("/api-auth/login/").content.decode()
    assert "Pantheon API" in login and "Django REST framework" not in login


def test_breadcrumbs_lead_from_a_turn_to_its_session_room_and_the_root(
    browser, api_client, session, turn_post
):
    url = turn_post("@writer hello").json()["url"]
    page = browser.get(url, **HTML).content.decode()
    trail = page[
        page.index('<ul class="breadcrumb">') : page.index("</ul>", page.index('<ul class="breadcrumb">'))
    ]
    names = ["Pantheon API", "Rooms", session.room.name, "Sessions", session.title, "Turns", "Turn"]
    positions = [trail.index(f">{name}</a>") for name in names]
    assert positions == sorted(positions)
    assert f'/api/v1/rooms/{session.room_id}/sessions/{session.pk}"' in trail


def test_register_and_token_open_on_their_form_not_a_405(client):
    for path in ("/api/v1/auth/register", "/api/v1/auth/token"):
        page = client.get(path, **HTML)
        assert page.status_code == 200 and "405" not in page.content.decode()
        assert client.get(path).status_code == 405  # JSON clients: as before


def test_a_browser_gets_a_page_for_an_unknown_address_and_the_api_stays_json(client):
    page = client.get("/no/such/page", **HTML)
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
    assert "Page not found" in page.content.decode() and "/api/v1/" in page.content.decode()
    assert client.get("/no/such/page").json()["code"] == "not_found"
    api = client.get("/api/v1/no/such", **HTML)
    assert api.status_code == 404 and api.json()["code"] == "not_found"


def test_form_help_texts_have_no_markdown_backticks(browser, session):
    form = turn_form(browser.get(f"/api/v1/sessions/{session.pk}/turns", **HTML).content.decode())
    assert "manual: the @tagged agents" in form and "`" not in form
