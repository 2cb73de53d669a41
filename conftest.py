"""Fixtures every test wants: users with credit accounts, authenticated API clients, a room of three
agents (or the ones a test names with ``@pytest.mark.room``) with a session, a helper that posts
turns, the fake OpenAI-compatible server, and Redis for the integration tests."""

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from orchestration.llm.openai_provider import OpenAIGateway
from orchestration.testing.fake_server import FakeLlmServer
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.tests.factories import SessionFactory
from usage.services.tokens import api_token_issue, api_token_used
from usage.tests.factories import UserFactory

REFERER = "https://pantheon.test"
TITLE = "Pantheon tests"

# The ``room`` fixture's agents, as (key, model alias) in position order: the demo room's line-up
# (seed_demo). A test that needs others says so with ``@pytest.mark.room(...)`` (see ``room``).
ROOM_AGENTS = (("writer", "deepseek"), ("researcher", "qwen"), ("critic", "gpt-4o-mini"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "room(*agents, **fields): the agents of the room fixture as (key, model alias) pairs in "
        "position order, and the room's own fields (name=...)",
    )


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb):
    """With ``--reuse-db`` the test database outlives the run. A transactional test flushes it when it
    ends (serialized rollback puts the migrations' rows, such as the model catalog, back when the
    next one starts, not after), so the run's last one would leave the next run a database without
    them: put them back before the run ends."""
    yield
    if not django_db_keepdb:
        return
    from django.core.management import call_command
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all(initialized_only=True):
            contents = getattr(connection, "_test_serialized_contents", None)
            if contents:
                # Whatever the last test left (flushed or not), leave the migrations' rows alone.
                call_command(
                    "flush",
                    database=connection.alias,
                    interactive=False,
                    verbosity=0,
                    inhibit_post_migrate=True,
                    reset_sequences=False,  # as TransactionTestCase flushes: ids stay ahead of the rows
                )
                connection.creation.deserialize_db_from_string(contents)


@pytest.fixture(autouse=True)
def login_counts_fresh():
    """Failed logins are counted per name and per address (127.0.0.1 for every test) in the cache:
    each test starts with none (the in-process cache; a test on Redis has a key prefix of its own)."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from pantheon import limits

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()
    limits._local = limits._LocalCounters()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def client_for() -> Callable[..., APIClient]:
    """``client_for(user)``: an API client authenticated as that user with a new API token."""

    def make(user) -> APIClient:
        client = APIClient()
        stored, token = api_token_issue(user=user, name="tests")
        # Its last use noted: a test's requests within the minute write nothing for the token, so
        # the statements a request takes are its own (test_tokens covers the write).
        api_token_used(token=stored)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def api_client(user, client_for) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_client(other_user, client_for) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def room(request, user):
    """The user's room with ``writer`` (deepseek), ``researcher`` (qwen) and ``critic`` (gpt-4o-mini),
    at positions 0, 1, 2, each named after its key (Writer, …).

    A test, a class or a module (``pytestmark``) whose assertions depend on other agents or models
    says which, in position order, and any field of the room:
    ``@pytest.mark.room(("writer", "deepseek"), ("critic", "qwen"), name="Salon")``; with no agents
    (``@pytest.mark.room(name="Salon")``) the three above. The fake server's script is keyed by
    provider model, so the models are part of what a test checks."""
    marker = request.node.get_closest_marker("room")
    agents = (marker.args if marker else ()) or ROOM_AGENTS
    room = RoomFactory(owner=user, **(marker.kwargs if marker else {}))
    for position, (key, model_alias) in enumerate(agents):
        AgentFactory(room=room, agent_key=key, model_alias=model_alias, position=position)
    return room


@pytest.fixture
def session(room):
    """A new session (no turns yet) in ``room``."""
    return SessionFactory(room=room)


@pytest.fixture
def turn_post(request) -> Callable[..., object]:
    """Posts a turn through the API and returns the response:
    ``turn_post("@writer hi")`` runs it on ``session`` as ``api_client``;
    ``turn_post(text, mode=..., session=..., client=..., HTTP_IDEMPOTENCY_KEY=...)`` for anything else.
    ``session`` and ``api_client`` are only made when no other is given."""

    def post(text: str, *, mode: str = "manual", session=None, client=None, **headers):
        session = session if session is not None else request.getfixturevalue("session")
        client = client if client is not None else request.getfixturevalue("api_client")
        return client.post(
            f"/api/v1/sessions/{session.pk}/turns",
            {"user_input": text, "mode": mode},
            format="json",
            **headers,
        )

    return post


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
