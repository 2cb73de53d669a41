"""Fixtures every test wants: users with credit accounts, and authenticated API clients."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from usage.tests.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


@pytest.fixture
def api_client(user) -> APIClient:
    return _client_for(user)


@pytest.fixture
def other_client(other_user) -> APIClient:
    return _client_for(other_user)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis every integration test uses. With CI=true a missing Redis fails; off CI it skips."""
    import os
    import socket

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition("@")[2].partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=2).close()
    except OSError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but Redis is not reachable at {url}")
        pytest.skip(f"Redis not reachable at {url} (laptop run)")
    return url
