"""Register, token, me; Bearer and Token keywords; 401 without credentials."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from knox.crypto import hash_token
from rest_framework.test import APIClient

from usage.models import ApiToken, CreditAccount, CreditLedgerEntry
from usage.services.tokens import api_token_issue
from usage.tests.factories import (
    PASSWORD,
    CreditHoldFactory,
    CreditLedgerEntryFactory,
    LlmCallEventFactory,
)

pytestmark = pytest.mark.django_db

REGISTER, TOKEN, ME = "/api/v1/auth/register", "/api/v1/auth/token", "/api/v1/auth/me"
ADA = {"username": "ada", "password": "analytical-engine-1843"}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- Register. ---------------------------------------------------------------------------------


def test_register_gives_a_working_token_and_the_opening_credits(anon_client, settings):
    response = anon_client.post(REGISTER, {**ADA, "email": "ada@example.com"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "token"} and body["username"] == "ada"
    user = get_user_model().objects.get(username="ada")
    assert body["id"] == user.pk and user.email == "ada@example.com" and user.check_password(ADA["password"])
    assert ApiToken.objects.get(user=user).digest == hash_token(body["token"])  # only the digest is kept
    assert CreditAccount.objects.get(user=user).balance == settings.REGISTRATION_OPENING_CREDITS
    assert CreditLedgerEntry.objects.get(user=user).kind == "grant"
    assert bearer(body["token"]).get(ME).json()["username"] == "ada"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ada", "password": "short"}, "password"),  # too short
        ({"username": "ada", "password": "password"}, "password"),  # too common
        ({"username": "ada", "password": "1234567890123"}, "password"),  # all digits
        ({"username": "ada-lovelace", "password": "ada-lovelace"}, "password"),  # like the username
        ({"username": "", "password": ADA["password"]}, "username"),
        ({"username": "bad name!", "password": ADA["password"]}, "username"),
        ({"username": "u" * 151, "password": ADA["password"]}, "username"),
        ({**ADA, "email": "not-an-email"}, "email"),
        ({"password": ADA["password"]}, "username"),
        ({"username": "ada"}, "password"),
    ],
)
def test_register_validation_errors_are_400_with_the_field(anon_client, body, field):
    response = anon_client.post(REGISTER, body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid" and error["detail"] and field in error["fields"]
    assert not get_user_model().objects.exists()


def test_register_a_taken_username_is_400_whatever_its_case(anon_client, user):
    response = anon_client.post(REGISTER, {**ADA, "username": user.username.upper()}, format="json")
    assert response.status_code == 400 and "username" in response.json()["fields"]
    assert get_user_model().objects.count() == 1


def test_registration_can_be_closed(anon_client, settings):
    settings.REGISTRATION_OPEN = False
    response = anon_client.post(REGISTER, ADA, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Registration is closed on this server.",
        "code": "registration_closed",
    }
    assert not get_user_model().objects.exists()


# --- Token. ------------------------------------------------------------------------------------


def test_each_login_issues_a_new_token_for_its_device_and_both_work(anon_client, user):
    body = {"username": user.username, "password": PASSWORD}
    laptop = anon_client.post(TOKEN, {**body, "name": "laptop"}, format="json")
    assert laptop.status_code == 200 and set(laptop.json()) == {"token", "token_id", "expires_at"}
    phone = anon_client.post(TOKEN, {**body, "name": "phone"}, format="json")
    assert phone.json()["token"] != laptop.json()["token"]
    stored = {t.name: t for t in ApiToken.objects.filter(user=user)}
    assert set(stored) == {"laptop", "phone"}
    assert stored["laptop"].digest == hash_token(laptop.json()["token"])
    assert str(stored["laptop"].public_id) == laptop.json()["token_id"]
    for issued in (laptop, phone):
        assert bearer(issued.json()["token"]).get(ME).json()["id"] == user.pk


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("user-that-does-not-exist", PASSWORD),
        ("{user}", "wrong"),
        ("{user}", PASSWORD.capitalize()),
    ],
)
def test_bad_credentials_are_400_invalid_credentials(anon_client, user, username, password):
    body = {"username": username.format(user=user.username), "password": password}
    response = anon_client.post(TOKEN, body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Unable to log in with the provided credentials.",
        "code": "invalid_credentials",
    }
    assert not ApiToken.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("body", "field"), [({"username": "ada"}, "password"), ({"password": "x"}, "username")]
)
def test_a_token_request_missing_a_field_is_400_invalid(anon_client, body, field):
    response = anon_client.post(TOKEN, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]


def test_an_inactive_user_gets_no_token(anon_client, user):
    user.is_active = False
    user.save()
    response = anon_client.post(TOKEN, {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_credentials"


def test_a_stale_token_does_not_block_getting_a_new_one(user):
    client = bearer("stale-token-from-last-week")
    response = client.post(TOKEN, {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert ApiToken.objects.get(user=user).digest == hash_token(response.json()["token"])


# --- Authentication keywords and 401. -----------------------------------------------------------


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer", "token"])
def test_bearer_and_token_keywords_both_authenticate(user, keyword):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {api_token_issue(user=user)[1]}")
    response = client.get(ME)
    assert response.status_code == 200 and response.json()["id"] == user.pk


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Bearer a b", "Basic Zm9vOmJhcg=="])
def test_missing_or_bad_credentials_are_401_not_authenticated(header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated" and response.json()["detail"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_token_of_an_inactive_user_is_401(user):
    _, token = api_token_issue(user=user)
    user.is_active = False
    user.save()
    assert bearer(token).get(ME).status_code == 401


# --- Me. ---------------------------------------------------------------------------------------


def test_me_shows_the_user_balance_and_usage_totals(api_client, user, other_user):
    LlmCallEventFactory(user=user)  # 1,000 in, 500 out, 853 OE: 0.000725 USD, 0.7250 credits
    LlmCallEventFactory(
        user=user,
        purpose="routing",
        unbilled=True,
        input_tokens=200,
        output_tokens=20,
        oe_tokens=30,
        cost_usd=Decimal("0.000077"),
    )
    LlmCallEventFactory(user=other_user, input_tokens=99_999)  # someone else's usage is not counted
    response = api_client.get(ME)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["username"], body["email"]) == (user.pk, user.username, user.email)
    assert body["credit_balance"] == "1000.0000"  # a decimal string
    assert Decimal(body["credit_balance"]) == CreditAccount.objects.get(user=user).balance
    usage = body["usage"]
    assert (usage["events"], usage["input_tokens"], usage["output_tokens"], usage["oe_tokens"]) == (
        2,
        1200,
        520,
        883,
    )
    assert Decimal(usage["cost_usd"]) == Decimal("0.000802")
    assert Decimal(usage["billed_cost_usd"]) == Decimal("0.000725")
    assert Decimal(usage["credits_burned"]) == Decimal("0.725")


def test_me_shows_the_ledger_balance_and_what_work_in_flight_holds(api_client, user):
    CreditLedgerEntryFactory(user=user, amount=Decimal("-100"))  # an adjustment: 1,000 → 900
    CreditHoldFactory(user=user, amount=Decimal("250"))  # a turn in flight reserved its worst case
    body = api_client.get(ME).json()
    assert (body["credit_balance"], body["credits_held"], body["credits_available"]) == (
        "900.0000",
        "250.0000",
        "650.0000",
    )


def test_me_for_a_new_user_has_zero_usage(api_client):
    usage = api_client.get(ME).json()["usage"]
    assert usage["events"] == 0 and usage["input_tokens"] == 0
    assert Decimal(usage["cost_usd"]) == 0 and Decimal(usage["credits_burned"]) == 0


# --- Throttling (off in test settings; switched on here for the auth scope only). ---------------


def test_login_attempts_are_throttled_in_the_auth_scope(anon_client, user, monkeypatch):
    from django.core.cache import cache

    from pantheon.api.throttling import ScopedRateThrottle
    from pantheon.api.views import TokenView

    cache.clear()
    monkeypatch.setattr(TokenView, "throttle_classes", [ScopedRateThrottle])
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "2/min"})
    body = {"username": user.username, "password": "wrong"}
    statuses = [anon_client.post(TOKEN, body, format="json").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    throttled = anon_client.post(TOKEN, {**body, "password": PASSWORD}, format="json")
    assert throttled.status_code == 429 and throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    cache.clear()
