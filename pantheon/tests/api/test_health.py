"""GET /api/v1/health: no credentials; the database, the cache and the broker; degraded (200) without
the cache or the broker, 503 only when the database is down."""

import time

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db

HEALTH = "/api/v1/health"


@pytest.fixture
def celery_broker(settings):
    """Point the Celery app at another broker URL for one test (health pings the real broker)."""
    from pantheon.celery import app

    original = app.conf.broker_url

    def use(url: str) -> None:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        app.conf.broker_url = url

    yield use
    app.conf.broker_url = original


def test_health_reports_database_local_cache_and_eager_broker(anon_client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = anon_client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "local", "broker": "eager"}


def test_health_reports_a_live_redis_cache(anon_client, settings, redis_cache):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = anon_client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok", "broker": "eager"}


def test_an_unreachable_cache_makes_health_degraded_not_down(anon_client, settings, cache_down):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = anon_client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "cache": "unavailable",
        "broker": "eager",
    }


def test_health_ignores_credentials_even_bad_ones(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = anon_client.get(HEALTH)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_health_reports_a_live_redis_broker(anon_client, celery_broker, redis_url):
    celery_broker(redis_url)
    response = anon_client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "local", "broker": "ok"}


def test_an_unreachable_broker_is_reported_fast_and_makes_health_degraded(anon_client, celery_broker):
    celery_broker("redis://127.0.0.1:1/0")  # nothing listens on port 1
    started = time.monotonic()
    response = anon_client.get(HEALTH)
    assert time.monotonic() - started < 1.5  # one attempt, no retry back-off
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "cache": "local",
        "broker": "unavailable",
    }


@pytest.fixture
def database_at(monkeypatch):
    """Point the health check's own connection at another port (the next check reconnects)."""
    from pantheon import db_connections

    def use(port: int) -> None:
        if db_connections._ping_connection is not None:
            db_connections._ping_connection.close()
        monkeypatch.setattr(db_connections, "_ping_connection", None)
        monkeypatch.setitem(connections["default"].settings_dict, "PORT", str(port))

    yield use
    if db_connections._ping_connection is not None:
        db_connections._ping_connection.close()
    db_connections._ping_connection = None


def test_health_is_503_when_the_database_is_down(anon_client, settings, database_at):
    """The check runs against a real connection to a port where no database listens."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    database_at(1)
    response = anon_client.get(HEALTH)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "cache": "local",
        "broker": "eager",
    }


def test_a_database_that_accepts_but_never_answers_is_unavailable_within_the_timeout(
    anon_client, settings, database_at
):
    """A hung server (it accepts connections and says nothing) must not hold the health check for
    the pool's 30 s: the check's own connection gives up after about 2 s."""
    import socket

    settings.CELERY_TASK_ALWAYS_EAGER = True
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    database_at(silent.getsockname()[1])
    started = time.monotonic()
    try:
        response = anon_client.get(HEALTH)
    finally:
        silent.close()
    assert response.status_code == 503 and response.json()["database"] == "unavailable"
    assert time.monotonic() - started < 10  # the pool's timeout is 30 s


def test_health_does_not_wait_for_a_connection_of_the_pool(anon_client, settings, monkeypatch):
    """Under load every pooled connection is taken and turns queue for the next one (up to the pool's
    30 s timeout); the health check asks on its own connection instead. Here taking the request's
    connection would fail, as a pool timeout does: health still answers ok."""
    from django.db.utils import OperationalError

    settings.CELERY_TASK_ALWAYS_EAGER = True
    default = connections["default"]

    def pool_exhausted(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 30.00 sec")

    monkeypatch.setattr(default, "ensure_connection", pool_exhausted)
    monkeypatch.setattr(default, "connection", None)
    response = anon_client.get(HEALTH)
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
