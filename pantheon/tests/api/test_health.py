"""GET /api/v1/health: no credentials; the database, the cache and the broker; degraded (200) without
the cache or the broker, 503 only when the database is down."""

import time

import pytest
from django.db import connections

from pantheon.api import views

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


def test_health_is_503_when_the_database_is_down(anon_client, monkeypatch, settings):
    """The check runs against a real connection to a port where no database listens."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    default = connections["default"]
    broken = type(default)({**default.settings_dict, "HOST": "127.0.0.1", "PORT": "1"}, alias="broken")
    monkeypatch.setattr(views, "connection", broken)
    try:
        response = anon_client.get(HEALTH)
    finally:
        broken.close()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "cache": "local",
        "broker": "eager",
    }
