"""Row 4 of the credentials audit: ``…σ`` and ``…ς`` registered at the same moment made two accounts
(the check compared ``upper()``, the index ``lower()``), a login as one answered as the other, and
``аdmin`` (Cyrillic а) registered beside ``admin``. Real threads on PostgreSQL."""

from functools import partial
from importlib import import_module

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connections
from rest_framework.test import APIClient

from pantheon.testing.processes import concurrently
from usage.models import AccountName, CreditAccount
from usage.tests.factories import UserFactory
from usage.usernames import username_normalize, username_skeleton

REGISTER, TOKEN, ME = "/api/v1/auth/register", "/api/v1/auth/token", "/api/v1/auth/me"
PASSWORD = "analytical-engine-1843"


def register_at_once(names: list[str]) -> list:
    """Every name registered from a thread of its own, all released at once (real connections)."""

    def register(name: str):
        try:
            return APIClient().post(REGISTER, {"username": name, "password": PASSWORD})
        finally:
            connections.close_all()

    return concurrently(*[partial(register, name) for name in names])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    "names",
    [
        ["sophos_σ", "sophos_ς", "SOPHOS_Σ", "sophos_σ"],  # final sigma, small and capital sigma
        ["admin", "аdmin", "ａｄｍｉｎ", "ADMIN"],  # Cyrillic а, fullwidth letters, case
    ],
)
def test_names_that_compare_equal_registered_at_once_make_one_account(names):
    responses = register_at_once(names)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 400, 400, 400], statuses
    for refused in (r for r in responses if r.status_code == 400):
        assert refused.json()["fields"] == {"username": ["This username is taken."]}
    assert get_user_model().objects.count() == 1 and CreditAccount.objects.count() == 1


@pytest.mark.django_db
def test_a_login_by_any_equal_spelling_is_the_one_account(anon_client):
    registered = anon_client.post(REGISTER, {"username": "ΣΟΦΟΣ", "password": PASSWORD}).json()
    for typed in ("σοφος", "σοφοσ", "Σοφος"):
        token = anon_client.post(TOKEN, {"username": typed, "password": PASSWORD}).json()["token"]
        assert APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get(ME).json()["id"] == registered["id"]


@pytest.mark.django_db
def test_a_look_alike_of_an_operator_made_account_is_refused(anon_client):
    UserFactory(username="admin", is_staff=True)  # made outside registration: compared all the same
    response = anon_client.post(REGISTER, {"username": "аdmin", "password": PASSWORD})
    assert response.status_code == 400 and response.json()["fields"] == {
        "username": ["This username is taken."]
    }


def test_the_compared_forms():
    assert username_normalize("ＡＤＡ") == username_normalize("ada") == "ada"
    assert username_normalize("sophos_ς") == username_normalize("SOPHOS_Σ")
    assert username_skeleton("аdmin") == username_skeleton("admin") != username_skeleton("odmin")
    assert username_skeleton("paypa1") == username_skeleton("paypal")
    assert username_skeleton("ada") != username_skeleton("bob")


@pytest.mark.django_db
def test_the_migration_reports_existing_collisions_and_keeps_both_accounts(capsys):
    older = UserFactory(username="sophos_σ")
    AccountName.objects.all().delete()  # as before the migration: two accounts, one name
    newer = UserFactory.build(username="sophos_ς")
    get_user_model().objects.bulk_create([newer])  # no signal: as the old registrations wrote it
    AccountName.objects.all().delete()
    migration = import_module("usage.migrations.0013_account_names")
    migration.account_names_fill(apps, None)
    report = capsys.readouterr().out
    assert "'sophos_ς'" in report and "'sophos_σ'" in report and "collides" in report
    assert list(AccountName.objects.values_list("user_id", flat=True)) == [older.pk]
    assert get_user_model().objects.count() == 2  # nobody is locked out: the operator renames one
