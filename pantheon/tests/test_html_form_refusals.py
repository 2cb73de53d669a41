"""No HTML form of the browsable API answers 500 on input it refuses: every POST form is posted its
refusal cases with ``Accept: text/html`` (what the form sends), and the page shows the refusal beside
what was typed. A JSON client gets the same status."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db
HTML = {"HTTP_ACCEPT": "text/html"}


def _refusals(room, session, user) -> list[tuple[str, dict, str]]:
    """(path, form body, text the page must show) for each way each form can be refused."""
    rooms, agents = "/api/v1/rooms", f"/api/v1/rooms/{room.pk}/agents"
    return [
        (rooms, {"name": ""}, "This field may not be blank."),
        (agents, {"agent_key": "poet", "name": "Poet", "model_alias": "no-such-model"}, "no-such-model"),
        (agents, {"agent_key": "writer", "name": "Again", "model_alias": "deepseek"}, "already"),
        (
            agents,
            {
                "agent_key": "poet",
                "name": "Poet",
                "model_alias": "deepseek",
                "context_window_tokens": "99999999",
            },
            "At most",
        ),
        (
            agents,
            {"agent_key": "Bad Key!", "name": "", "model_alias": "nope"},
            "This field may not be blank.",
        ),
        (f"/api/v1/rooms/{room.pk}/sessions", {"title": "x" * 500}, "Ensure this field"),
        (f"/api/v1/sessions/{session.pk}/turns", {"user_input": "", "mode": "manual"}, "user_input"),
        (f"/api/v1/sessions/{session.pk}/turns", {"user_input": "@ghost hi", "mode": "manual"}, "tag"),
        (f"/api/v1/sessions/{session.pk}/turns", {"user_input": "hi", "mode": "chaos"}, "not a valid choice"),
        ("/api/v1/auth/register", {"username": user.username, "password": "a-long-passphrase-42"}, "taken"),
        ("/api/v1/auth/register", {"username": "bad name!", "password": "1"}, "password"),
        ("/api/v1/auth/token", {"username": user.username, "password": "wrong"}, "Unable to log in"),
        ("/api/v1/openai/keys", {"name": "x" * 500}, "Ensure this field"),
    ]


def test_every_refusal_of_every_form_is_a_page_with_the_refusal(browser, client_for, room, session, user):
    json_client = client_for(user)
    for path, body, shown in _refusals(room, session, user):
        page = browser.post(path, body, **HTML)
        assert 400 <= page.status_code < 500, (path, body, page.status_code)
        assert page["Content-Type"].startswith("text/html"), path
        assert shown in page.content.decode(), (path, body, shown)
        assert json_client.post(path, body).status_code == page.status_code, (path, body)


def test_both_invalid_fields_of_a_registration_are_named_at_once(client):
    page = client.post("/api/v1/auth/register", {"username": "bad name!", "password": "1"}, **HTML)
    assert page.status_code == 400
    fields = client.post("/api/v1/auth/register", {"username": "bad name!", "password": "1"}).json()["fields"]
    assert set(fields) == {"username", "password"}


def test_every_invalid_field_of_an_agent_is_named_at_once(api_client, room):
    body = {"agent_key": "Bad Key!", "name": "", "model_alias": "nope", "position": -1}
    fields = api_client.post(f"/api/v1/rooms/{room.pk}/agents", body).json()["fields"]
    assert set(fields) == {"agent_key", "name", "model_alias", "position"}


def _post_views(patterns=None, prefix=""):
    """Every URL of the API whose view takes POST, as a path pattern."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _post_views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            actions = getattr(entry.callback, "actions", None) or {}
            view_class = getattr(entry.callback, "cls", None)
            takes_post = "post" in actions or (not actions and hasattr(view_class, "post"))
            if takes_post and (prefix + str(entry.pattern)).startswith("api/v1/"):
                yield prefix + str(entry.pattern)


def test_junk_posted_to_every_api_form_is_never_a_server_error(browser, room, session):
    paths = list(_post_views())
    assert len(paths) >= 7, paths  # rooms, agents, sessions, turns, register, token, keys
    junk = {"name": "", "agent_key": "?", "model_alias": "?", "user_input": "", "mode": "?", "username": ""}
    for pattern in paths:
        path = "/" + pattern.replace("<uuid:room_id>", str(room.pk)).replace(
            "<uuid:session_id>", str(session.pk)
        )
        for body in ({}, junk):
            response = browser.post(path, body, **HTML)
            assert response.status_code < 500, (path, body, response.status_code)


def test_an_anonymous_browser_on_a_rooms_page_gets_the_refusal_not_a_server_error(client, room):
    """Logged out (or logged out by a form posted in another tab), a person opening a page under a
    room gets the 401/403 page: its breadcrumbs name no one's room."""
    response = client.get(f"/api/v1/rooms/{room.pk}/agents", HTTP_ACCEPT="text/html")
    assert response.status_code in (401, 403)
    assert "Pantheon" in response.content.decode()
