"""The endpoint's test clients: the real ``openai`` SDK against a live server."""

import pytest
from django.core.signals import request_started
from openai import OpenAI

from usage.services.tokens import api_token_issue


@pytest.fixture
def client(live_server, user, fake_llm) -> OpenAI:
    """The SDK as a chat client sets it up: base URL and key, default retries (2) left on."""
    token = api_token_issue(user=user)[1]
    return OpenAI(base_url=f"{live_server.url}/api/openai/v1", api_key=token)


@pytest.fixture
def received() -> list[tuple[str, str]]:
    """Every request the live server received, as (method, path)."""
    requests: list[tuple[str, str]] = []

    def note(sender, environ, **kwargs):
        requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))

    request_started.connect(note)
    yield requests
    request_started.disconnect(note)
