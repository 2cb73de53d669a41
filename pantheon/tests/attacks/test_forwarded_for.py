"""Row 2 of the credentials audit: a new ``X-Forwarded-For`` on every request reset every anonymous
limit. Real requests to a live server, counted on the real Redis: the header is ignored unless the
operator trusts proxies (``TRUSTED_PROXY_COUNT``), and then only the entries those proxies wrote count."""

from collections import Counter
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from pantheon.api import throttling
from pantheon.api.views import RegisterView, TokenView
from pantheon.client import client_address
from pantheon.testing.processes import http
from usage.models import CreditAccount
from usage.tests.factories import UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture
def throttled(monkeypatch, settings):
    """The auth and register throttles on; the lockout of failed logins out of the way (its own test)."""
    settings.LOGIN_FAILURES_PER_USERNAME = settings.LOGIN_FAILURES_PER_ADDRESS = 1000
    for view in (TokenView, RegisterView):
        monkeypatch.setattr(view, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(
        throttling.ScopedRateThrottle, "THROTTLE_RATES", {"auth": "20/min", "register": "10/hour"}
    )


def test_token_guesses_with_a_new_forwarded_for_each_are_still_limited(
    wide_live_server, redis_cache, one_window, throttled
):
    user = UserFactory(password=PASSWORD)
    statuses = Counter(
        http(
            "POST",
            f"{wide_live_server}/api/v1/auth/token",
            {"username": user.username, "password": f"guess-{i}"},
            {"X-Forwarded-For": f"198.51.100.{i}"},
        )[0]
        for i in range(30)
    )
    assert statuses == {400: 20, 429: 10}


def test_registrations_with_a_new_forwarded_for_each_stop_at_the_hourly_limit(
    wide_live_server, redis_cache, one_window, throttled, settings
):
    settings.REGISTRATION_OPENING_CREDITS = Decimal("25")
    statuses = Counter(
        http(
            "POST",
            f"{wide_live_server}/api/v1/auth/register",
            {"username": f"farm{i}", "password": PASSWORD},
            {"X-Forwarded-For": f"203.0.113.{i}"},
        )[0]
        for i in range(25)
    )
    assert statuses == {201: 10, 429: 15}
    # What a farm earns is what the operator grants self-registered accounts, not the operator's own.
    balances = set(CreditAccount.objects.values_list("balance", flat=True))
    assert get_user_model().objects.count() == 10 and balances == {Decimal("25")}


def test_behind_one_trusted_proxy_only_the_entry_it_wrote_counts(
    wide_live_server, redis_cache, one_window, throttled, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    user = UserFactory(password=PASSWORD)

    def guess(spoofed: str, proxy_saw: str) -> int:
        headers = {"X-Forwarded-For": f"{spoofed}, {proxy_saw}"}
        body = {"username": user.username, "password": "wrong"}
        return http("POST", f"{wide_live_server}/api/v1/auth/token", body, headers)[0]

    # One client rotating what it puts first: the proxy's entry (the last) is the same, one count.
    assert Counter(guess(f"10.9.9.{i}", "192.0.2.1") for i in range(25)) == {400: 20, 429: 5}
    # Another client, as its proxy saw it, has a count of its own.
    assert guess("10.9.9.1", "192.0.2.2") == 400


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, "198.51.100.7", "127.0.0.9"),  # nothing trusted: the socket's address, header ignored
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # what the client wrote first is not trusted
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (2, "198.51.100.7", "198.51.100.7"),  # fewer entries than proxies: the leftmost
        (1, "", "127.0.0.9"),
        (1, " , ", "127.0.0.9"),
    ],
)
def test_the_client_address_is_read_through_the_trusted_proxies_only(settings, trusted, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = trusted
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected
