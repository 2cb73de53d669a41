from collections.abc import Callable

import pytest

from orchestration.llm.fake_server import FakeLlmServer
from orchestration.llm.openai_provider import OpenAIGateway

REFERER = "https://pantheon.test"
TITLE = "Pantheon tests"


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
        *, timeout: float = 2.0, max_retries: int = 0, temperature: float | None = None
    ) -> OpenAIGateway:
        return OpenAIGateway(
            base_url=fake_llm.base_url,
            api_key="test-key",
            timeout=timeout,
            max_retries=max_retries,
            referer=REFERER,
            title=TITLE,
            temperature=temperature,
        )

    return make
