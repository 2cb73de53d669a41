"""Usernames are one account regardless of case: registering ``casex`` once ``CASEx`` exists is a 400,
even when the registrations race (real threads on PostgreSQL), and logging in takes any case."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from rest_framework.test import APIClient

from usage.models import CreditAccount, CreditLedgerEntry

REGISTER, TOKEN = "/api/v1/auth/register", "/api/v1/auth/token"
PASSWORD = "analytical-engine-1843"


@pytest.mark.django_db
def test_registering_a_name_taken_in_another_case_is_400_on_username(anon_client):
    assert anon_client.post(REGISTER, {"username": "CASEx", "password": PASSWORD}).status_code == 201
    response = anon_client.post(REGISTER, {"username": "casex", "password": PASSWORD})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "username: This username is taken.",
        "code": "invalid",
        "fields": {"username": ["This username is taken."]},
    }
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["CASEx"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_six_racing_registrations_of_one_name_in_different_cases_make_one_account():
    names = ["CASEx", "casex", "CaseX", "cAsEx", "CASEX", "casEx"]
    barrier = threading.Barrier(len(names))
    responses: list = [None] * len(names)

    def register(i: int) -> None:
        try:
            barrier.wait()
            responses[i] = APIClient().post(REGISTER, {"username": names[i], "password": PASSWORD})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=register, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 400, 400, 400, 400, 400], statuses
    for refused in (r for r in responses if r.status_code == 400):
        assert refused.json()["code"] == "invalid" and "username" in refused.json()["fields"]
    winner = next(r.json() for r in responses if r.status_code == 201)
    users = get_user_model().objects.filter(username__iexact="casex")
    assert [u.username for u in users] == [winner["username"]]
    # The refused registrations left nothing behind: one account, one opening grant.
    assert CreditAccount.objects.count() == 1 and CreditLedgerEntry.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["Ada.Lovelace", "ada.lovelace", "ADA.LOVELACE"])
def test_logging_in_accepts_the_username_in_any_case(anon_client, typed):
    registered = anon_client.post(REGISTER, {"username": "Ada.Lovelace", "password": PASSWORD}).json()
    response = anon_client.post(TOKEN, {"username": typed, "password": PASSWORD})
    assert response.status_code == 200
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}").get("/api/v1/auth/me").json()
    assert me["id"] == registered["id"]


@pytest.mark.django_db
def test_a_username_in_another_case_with_a_wrong_password_is_still_refused(anon_client):
    anon_client.post(REGISTER, {"username": "Ada", "password": PASSWORD})
    response = anon_client.post(TOKEN, {"username": "ADA", "password": PASSWORD.upper()})
    assert response.status_code == 400 and response.json()["code"] == "invalid_credentials"
