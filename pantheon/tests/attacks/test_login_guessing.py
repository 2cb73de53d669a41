"""Row 1 of the credentials audit: 40 wrong passwords in 5 s on the login forms, all 200, and the admin
form confirming a right password before its staff check. Real requests to a live server, failures
counted on the real Redis; every request sends a new ``X-Forwarded-For`` (ignored: no trusted proxy)."""

import re
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher

from pantheon.testing.processes import http
from usage.services.logins import LoginLocked, login_failed, login_guard
from usage.tests.factories import UserFactory

PASSWORD = "correct-horse-battery"
FORMS = {"browsable": "/api-auth/login/", "admin": "/admin/login/"}


def form_login(base: str, path: str, username: str, password: str, forwarded: str) -> tuple[int, str]:
    """Fill in a login form as a browser does (its CSRF cookie and token); the final status and body."""
    opener = build_opener(HTTPCookieProcessor(CookieJar()))
    headers = {"X-Forwarded-For": forwarded}
    page = opener.open(Request(base + path, headers=headers), timeout=30).read().decode()  # noqa: S310 (loopback)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    fields = {"csrfmiddlewaretoken": csrf, "username": username, "password": password, "next": "/admin/"}
    body = urlencode(fields).encode()
    request = Request(base + path, data=body, headers={**headers, "Referer": base + path})  # noqa: S310
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode()


def token_login(base: str, username: str, password: str, forwarded: str) -> int:
    body = {"username": username, "password": password}
    return http("POST", f"{base}/api/v1/auth/token", body, {"X-Forwarded-For": forwarded})[0]


def test_one_limit_per_username_is_shared_by_the_token_endpoint_and_both_forms(
    wide_live_server, redis_cache, one_window
):
    user = UserFactory(password=PASSWORD, is_staff=True)
    name = user.username
    failures = [
        token_login(wide_live_server, name, "guess-1", "198.51.100.1"),
        form_login(wide_live_server, FORMS["browsable"], name, "guess-2", "198.51.100.2")[0],
        form_login(wide_live_server, FORMS["admin"], name, "guess-3", "198.51.100.3")[0],
        token_login(wide_live_server, name.upper(), "guess-4", "198.51.100.4"),  # any case, one name
        form_login(wide_live_server, FORMS["admin"], name, "guess-5", "198.51.100.5")[0],
    ]
    assert failures == [400, 200, 200, 400, 200]  # refused, the forms shown again with their error
    # Locked now, on every path, even with the right password.
    status, payload, headers = http(
        "POST", f"{wide_live_server}/api/v1/auth/token", {"username": name, "password": PASSWORD}
    )
    assert status == 429 and payload["code"] == "throttled" and 0 < int(headers["Retry-After"]) <= 30
    for path in FORMS.values():
        status, body = form_login(wide_live_server, path, name, PASSWORD, "198.51.100.9")
        assert status == 429 and '"code": "throttled"' in body


def test_one_address_guessing_many_names_is_locked_whatever_its_forwarded_for(
    wide_live_server, redis_cache, one_window
):
    users = [UserFactory(password=PASSWORD) for _ in range(22)]
    statuses = [
        token_login(wide_live_server, user.username, "wrong", f"203.0.113.{i}")
        for i, user in enumerate(users)
    ]
    assert statuses == [400] * 20 + [429] * 2
    # A name nobody guessed at, from that address, with its right password: the address is locked.
    assert token_login(wide_live_server, UserFactory(password=PASSWORD).username, PASSWORD, "10.0.0.1") == 429


def test_a_locked_login_costs_no_password_hash(wide_live_server, redis_cache, one_window, monkeypatch):
    user = UserFactory(password=PASSWORD)
    for i in range(5):
        token_login(wide_live_server, user.username, f"guess-{i}", "198.51.100.1")
    verified = []
    real_verify = MD5PasswordHasher.verify
    monkeypatch.setattr(
        MD5PasswordHasher, "verify", lambda self, *a: verified.append(1) or real_verify(self, *a)
    )
    assert [token_login(wide_live_server, user.username, PASSWORD, "198.51.100.1") for _ in range(10)] == [
        429
    ] * 10
    assert verified == []


def test_the_admin_form_refuses_a_non_staff_name_before_looking_at_its_password(
    wide_live_server, redis_cache, one_window
):
    member = UserFactory(password=PASSWORD, is_staff=False)
    right = form_login(wide_live_server, FORMS["admin"], member.username, PASSWORD, "198.51.100.1")
    wrong = form_login(wide_live_server, FORMS["admin"], member.username, "not-it", "198.51.100.1")
    assert right[0] == wrong[0] == 200
    error = re.compile(r'<p class="errornote">(.*?)</p>', re.S)
    assert error.search(right[1]).group(1) == error.search(wrong[1]).group(1)
    assert "sessionid" not in right[1]
    # Each try counted as a failed login: the admin form is no password oracle for members either.
    for _ in range(3):
        form_login(wide_live_server, FORMS["admin"], member.username, PASSWORD, "198.51.100.1")
    assert form_login(wide_live_server, FORMS["admin"], member.username, PASSWORD, "198.51.100.1")[0] == 429
    # Staff log in as before.
    staff = UserFactory(password=PASSWORD, is_staff=True)
    status, body = form_login(wide_live_server, FORMS["admin"], staff.username, PASSWORD, "198.51.100.2")
    assert status == 200 and "Site administration" in body


@pytest.mark.django_db
def test_each_failure_past_the_limit_doubles_the_lockout_up_to_the_maximum(
    redis_cache, monkeypatch, settings
):
    settings.LOGIN_LOCKOUT_MAX_SECONDS = 200
    now = [1_800_000_010.0]
    monkeypatch.setattr("pantheon.limits._clock", lambda: now[0])
    waits = []
    for _ in range(8):
        try:
            login_guard(username="victim", address="192.0.2.1")
        except LoginLocked as locked:
            waits.append(locked.retry_after_seconds)
            now[0] += locked.retry_after_seconds  # the client waits it out, then guesses again
        login_failed(username="victim", address="192.0.2.1")
    assert waits == [30, 60, 120]
    with pytest.raises(LoginLocked) as locked:
        login_guard(username="VICTIM", address="192.0.2.77")
    assert locked.value.retry_after_seconds == 200  # capped
