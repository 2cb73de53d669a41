"""Fixtures every test wants: users with credit accounts, authenticated API clients, the fake
OpenAI-compatible server, and Redis for the integration tests."""

from collections.abc import Callable

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orchestration.llm.openai_provider import OpenAIGateway
from orchestration.testing.fake_server import FakeLlmServer
from usage.tests.factories import UserFactory

REFERER = "https://pantheon.test"
TITLE = "Pantheon tests"


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


@pytest.fixture(scope="session")
def fake_llm_server():
    """One fake OpenAI-compatible server for the whole run (reset by ``fake_llm`` per test)."""
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server, settings):
    """The fake server with an empty script, and the app's settings pointed at it (real openai client)."""
    fake_llm_server.reset()
    fake_llm_server.set_latency(0)
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = fake_llm_server.base_url
    settings.LLM_API_KEY = "test-key"
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_TIMEOUT_SECONDS = 2.0
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
def openai_gateway_make(fake_llm) -> Callable[..., OpenAIGateway]:
    """Builds an ``OpenAIGateway`` pointed at the fake server: ``openai_gateway_make(timeout=0.5)``."""

    def make(
        *,
        timeout: float = 2.0,
        max_retries: int = 0,
        temperature: float | None = None,
        first_token_timeout: float | None = None,
        idle_timeout: float = 2.0,
    ) -> OpenAIGateway:
        return OpenAIGateway(
            base_url=fake_llm.base_url,
            api_key="test-key",
            timeout=timeout,
            max_retries=max_retries,
            referer=REFERER,
            title=TITLE,
            temperature=temperature,
            stream_first_token_timeout=first_token_timeout,
            stream_idle_timeout=idle_timeout,
        )

    return make
