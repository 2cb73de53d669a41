import pytest

from orchestration.llm.fake_server import FakeLlmServer
from orchestration.llm.openai_provider import OpenAIGateway


@pytest.fixture(scope="session")
def fake_llm_server():
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server, settings):
    """The fake OpenAI-compatible server, with the app's settings pointed at it (real openai client)."""
    fake_llm_server.reset()
    fake_llm_server.set_latency(0)
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = fake_llm_server.base_url
    settings.LLM_API_KEY = "test-key"
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_TIMEOUT_SECONDS = 2.0
    yield fake_llm_server
    fake_llm_server.reset()


def gateway_for(server: FakeLlmServer, *, timeout: float = 2.0, max_retries: int = 0) -> OpenAIGateway:
    return OpenAIGateway(
        base_url=server.base_url,
        api_key="test-key",
        timeout=timeout,
        max_retries=max_retries,
        referer="https://pantheon.test",
        title="Pantheon tests",
    )
