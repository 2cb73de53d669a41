from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from usage.models import CreditAccount, CreditLedgerEntry, LlmCallEvent

pytestmark = pytest.mark.django_db


def test_register_gives_token_and_opening_credits(anon_client, settings):
    response = anon_client.post(
        "/api/v1/auth/register", {"username": "ada", "password": "analytical-engine-1843"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "token"} and body["username"] == "ada"
    user = get_user_model().objects.get(username="ada")
    assert Token.objects.get(user=user).key == body["token"]
    assert CreditAccount.objects.get(user=user).balance == settings.CREDITS_OPENING_BALANCE
    assert CreditLedgerEntry.objects.get(user=user).kind == "grant"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ada", "password": "short"}, "password"),
        ({"username": "ada", "password": "password"}, "password"),
        ({"username": "", "password": "analytical-engine-1843"}, "username"),
        ({"username": "bad name!", "password": "analytical-engine-1843"}, "username"),
        ({"username": "ada", "password": "analytical-engine-1843", "email": "not-an-email"}, "email"),
        ({"password": "analytical-engine-1843"}, "username"),
    ],
)
def test_register_validation_errors_are_400(anon_client, body, field):
    response = anon_client.post("/api/v1/auth/register", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert not get_user_model().objects.exists()


def test_register_duplicate_username_is_400(anon_client, user):
    response = anon_client.post(
        "/api/v1/auth/register",
        {"username": user.username.upper(), "password": "analytical-engine-1843"},
        format="json",
    )
    assert response.status_code == 400 and "username" in response.json()["fields"]


def test_registration_can_be_closed(anon_client, settings):
    settings.REGISTRATION_OPEN = False
    response = anon_client.post(
        "/api/v1/auth/register", {"username": "ada", "password": "analytical-engine-1843"}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "registration_closed"


def test_token_for_good_credentials_and_400_for_bad(anon_client, user):
    good = anon_client.post(
        "/api/v1/auth/token", {"username": user.username, "password": "correct-horse-battery"}, format="json"
    )
    assert good.status_code == 200 and good.json()["token"] == Token.objects.get(user=user).key
    bad = anon_client.post(
        "/api/v1/auth/token", {"username": user.username, "password": "wrong"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_credentials"


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_both_token_keywords_authenticate(user, keyword):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {Token.objects.create(user=user).key}")
    assert client.get("/api/v1/auth/me").status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer nope", "Bearer a b", "Basic Zm9vOmJhcg=="])
def test_bad_credentials_are_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_me_shows_balance_and_usage_totals(api_client, user):
    LlmCallEvent.objects.create(
        user=user,
        purpose="agent_reply",
        model_alias="deepseek",
        provider_model="deepseek/deepseek-chat",
        input_tokens=1000,
        output_tokens=500,
        cost_usd=Decimal("0.000725"),
        credits_burned=Decimal("0.7250"),
    )
    body = api_client.get("/api/v1/auth/me").json()
    assert body["username"] == user.username
    assert Decimal(body["credit_balance"]) == CreditAccount.objects.get(user=user).balance
    assert body["usage"]["events"] == 1 and body["usage"]["input_tokens"] == 1000
    assert Decimal(body["usage"]["cost_usd"]) == Decimal("0.000725")
    assert Decimal(body["usage"]["credits_burned"]) == Decimal("0.725")


def test_me_without_credentials_is_401(anon_client):
    response = anon_client.get("/api/v1/auth/me")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
