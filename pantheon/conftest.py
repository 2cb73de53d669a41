"""Fixtures of the limits, health, telemetry and fault tests: a real Redis as the cache, or a cache
nobody answers; a live server that takes many connections at once; the test database's URL for the
processes a test starts. And a client logged in to the browsable API."""

import uuid

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread, _StaticFilesHandler

from pantheon import limits
from pantheon.testing.processes import database_url_of, free_port, redis_server

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


@pytest.fixture
def browser(client, user):
    """Django's test client logged in as ``user`` (a session, as a person at the browsable API)."""
    client.force_login(user)
    return client


@pytest.fixture
def limits_fresh(monkeypatch):
    """This process's fallback counters and the cache's failure state, new for the test."""
    monkeypatch.setattr(limits, "_local", limits._LocalCounters())
    monkeypatch.setattr(limits, "_state", limits._CacheState())


def _redis_cache(location: str) -> dict:
    return {
        "default": {
            "BACKEND": REDIS_CACHE,
            "LOCATION": location,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",  # counters of one test only; they expire alone
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.fixture
def cache_at(settings, limits_fresh):
    """Point the cache at a Redis URL for the rest of the test: ``cache_at("redis://…")``."""

    def point(location: str) -> None:
        settings.CACHES = _redis_cache(location)

    return point


@pytest.fixture
def redis_cache(cache_at, redis_url):
    """The cache on the real Redis, as in production."""
    cache_at(redis_url)


@pytest.fixture
def own_redis(cache_at, tmp_path):
    """The cache on a redis-server of the test's own, which nothing else talks to; its URL."""
    with redis_server(log=tmp_path / "redis.log") as server:
        cache_at(server.url)
        yield server.url


@pytest.fixture
def cache_down(cache_at):
    """The cache configured on Redis, at a port where nothing listens."""
    cache_at(f"redis://127.0.0.1:{free_port()}/0")


@pytest.fixture
def one_window(monkeypatch):
    """Every request of the test falls in one rate-limit window (the middle of a minute), so a test
    that happens to straddle a minute cannot see two windows' worth of requests pass."""
    monkeypatch.setattr(limits, "_clock", lambda: 1_800_000_030.0)


class _WideServer(ThreadedWSGIServer):
    request_queue_size = 256  # Django's 10 resets connections when dozens arrive at once


class _WideServerThread(LiveServerThread):
    server_class = _WideServer


@pytest.fixture
def wide_live_server(transactional_db, django_db_serialized_rollback):
    """A live server (a thread per request, as ``live_server``) for dozens of simultaneous clients."""
    thread = _WideServerThread("127.0.0.1", _StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()


@pytest.fixture
def database_url(transactional_db, django_db_serialized_rollback) -> str:
    """The test database as a URL, for processes started by the test (they see committed rows)."""
    from django.db import connection

    return database_url_of(connection)
