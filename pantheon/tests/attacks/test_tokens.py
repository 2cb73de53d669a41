"""Row 3 of the credentials audit: every API token in plaintext in the database, never expiring (one
400 days old worked), never rotated, no logout. Tokens are now stored as digests, expire, and are
listed and revoked per device."""

from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone
from knox.crypto import hash_token
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from usage.models import ApiToken
from usage.services.tokens import api_token_issue
from usage.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

ME, TOKEN, TOKENS = "/api/v1/auth/me", "/api/v1/auth/token", "/api/v1/auth/tokens"


def bearer(token: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_database_holds_no_usable_token(user):
    _, token = api_token_issue(user=user, name="laptop")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM usage_apitoken")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert token not in row and hash_token(token) in row
    assert bearer(hash_token(token)).get(ME).status_code == 401  # the stored digest is no credential


def test_an_expired_token_is_refused_and_forgotten(user):
    stored, token = api_token_issue(user=user)
    ApiToken.objects.filter(pk=stored.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = bearer(token).get(ME)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert not ApiToken.objects.filter(pk=stored.pk).exists()


def test_a_400_day_old_token_is_past_its_maximum_age_however_much_it_is_used(user, settings):
    stored, token = api_token_issue(user=user)
    ApiToken.objects.filter(pk=stored.pk).update(created=timezone.now() - timedelta(days=400))
    # Used now: its expiry is pushed on only to its maximum age, which is behind it.
    assert bearer(token).get(ME).status_code == 200
    assert ApiToken.objects.get(pk=stored.pk).expiry <= timezone.now()
    assert bearer(token).get(ME).status_code == 401


def test_use_pushes_the_expiry_on_and_notes_the_last_use_at_most_once_a_minute(user, settings):
    stored, token = api_token_issue(user=user)
    soon = timezone.now() + timedelta(days=1)
    ApiToken.objects.filter(pk=stored.pk).update(expiry=soon)
    assert bearer(token).get(ME).status_code == 200
    used = ApiToken.objects.get(pk=stored.pk)
    assert used.expiry > soon + timedelta(days=settings.API_TOKEN_TTL_DAYS - 2) and used.last_used_at
    assert bearer(token).get(ME).status_code == 200
    assert ApiToken.objects.get(pk=stored.pk).last_used_at == used.last_used_at  # no write per request


def test_tokens_are_listed_without_their_secret_and_revoked_one_by_one(user, other_user):
    _, laptop_token = api_token_issue(user=user, name="laptop")
    phone, phone_token = api_token_issue(user=user, name="phone")
    theirs, _ = api_token_issue(user=other_user, name="theirs")
    listed = bearer(laptop_token).get(TOKENS).json()
    assert [(t["name"], t["current"]) for t in listed] == [("phone", False), ("laptop", True)]
    assert set(listed[0]) == {"id", "name", "created_at", "last_used_at", "expires_at", "current"}
    assert phone_token not in str(listed) and phone.digest not in str(listed)

    assert bearer(laptop_token).delete(f"{TOKENS}/{theirs.public_id}").status_code == 404  # not yours
    assert ApiToken.objects.filter(pk=theirs.pk).exists()
    assert bearer(laptop_token).delete(f"{TOKENS}/{phone.public_id}").status_code == 204
    assert bearer(phone_token).get(ME).status_code == 401  # revoked: refused at once
    assert bearer(laptop_token).get(ME).status_code == 200


def test_logout_revokes_this_token_and_logout_all_every_one(user):
    _, first = api_token_issue(user=user)
    _, second = api_token_issue(user=user)
    _, third = api_token_issue(user=user)
    assert bearer(first).post("/api/v1/auth/logout").status_code == 204
    assert bearer(first).get(ME).status_code == 401 and bearer(second).get(ME).status_code == 200
    response = bearer(second).post("/api/v1/auth/logout-all")
    assert response.status_code == 200 and response.json() == {"revoked": 2}
    assert bearer(second).get(ME).status_code == 401 and bearer(third).get(ME).status_code == 401


def test_a_login_issues_a_new_token_the_old_ones_stay_until_revoked(anon_client, user):
    _, old = api_token_issue(user=user)
    new = anon_client.post(TOKEN, {"username": user.username, "password": PASSWORD}).json()["token"]
    assert new != old and bearer(old).get(ME).status_code == 200 and bearer(new).get(ME).status_code == 200


def test_the_migration_hashes_plaintext_tokens_and_their_holders_keep_working(user, other_user, settings):
    old = Token.objects.create(user=user)
    Token.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=400))
    other = Token.objects.create(user=other_user)
    migration = import_module("usage.migrations.0012_hash_plaintext_tokens")
    migration.hash_plaintext_tokens(apps, None)
    assert not Token.objects.exists()  # no plaintext left
    for plaintext, owner in ((old.key, user), (other.key, other_user)):
        assert ApiToken.objects.get(user=owner).digest == hash_token(plaintext)
        assert bearer(plaintext).get(ME).json()["id"] == owner.pk
    expiry = ApiToken.objects.get(user=user).expiry
    assert expiry > timezone.now() + timedelta(days=settings.API_TOKEN_TTL_DAYS - 1)
