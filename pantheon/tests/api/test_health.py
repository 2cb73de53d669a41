"""GET /api/v1/health: no credentials; the database, the cache and the broker; degraded (200) without
the cache or the broker, 503 only when the database is down. GET /api/v1/health/detail: the same for
staff, with each model's deployments and their cool-downs."""

import time
import uuid

import pytest
from django.db import OperationalError, connections

from pantheon import limits
from pantheon.api import views
from pantheon.api.authentication import BearerTokenAuthentication
from pantheon.testing.processes import concurrently, redis_server
from pantheon.testing.redis_commands import connections_opened
from usage import cooldown
from usage.cooldown import deployment_failure_record
from usage.models import LlmDeployment, LlmModel
from usage.tests.factories import UserFactory

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
    settings.CELERY_TASK_ALWAYS_EAGER = True
    default = connections["default"]

    def pool_exhausted(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 30.00 sec")

    monkeypatch.setattr(default, "ensure_connection", pool_exhausted)
    monkeypatch.setattr(default, "connection", None)
    response = anon_client.get(HEALTH)
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


# --- the operators' detail: deployments and their cool-downs --------------------------------------
DETAIL = "/api/v1/health/detail"


@pytest.fixture
def deployments(db, settings, monkeypatch):
    """``deepseek`` served by ``east`` then ``west``; ``east`` failed into a cool-down, ``west`` once
    (below the threshold); ``north`` inactive. Names unique per test: no cool-down leaks."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.LLM_COOLDOWN_FAILURES, settings.LLM_COOLDOWN_SECONDS = 2, 30
    settings.LLM_COOLDOWN_WINDOW_SECONDS = 86400  # both failures in one window, whatever the clock
    monkeypatch.setattr(cooldown, "_local", {})
    deepseek = LlmModel.objects.get(alias="deepseek")
    tag = uuid.uuid4().hex[:8]
    names = {key: f"{key}-{tag}" for key in ("east", "west", "north")}
    for position, key in enumerate(names):
        LlmDeployment.objects.create(
            model=deepseek, name=names[key], position=position, is_active=key != "north"
        )
    assert [deployment_failure_record(names["east"]) for _ in range(2)] == [False, True]
    deployment_failure_record(names["west"])
    return names


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


def test_health_detail_shows_staff_each_deployment_and_its_cool_down(client_for, staff, deployments):
    response = client_for(staff).get(DETAIL)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    (model,) = body["models"]  # the only model with active deployments
    assert model["alias"] == "deepseek"
    east, west = model["deployments"]
    assert (east["name"], east["position"], east["state"], east["recent_failures"]) == (
        deployments["east"],
        0,
        "cooling",
        2,
    )
    assert 0 < east["cooling_seconds"] <= 30
    assert west == {
        "name": deployments["west"],
        "position": 1,
        "state": "ok",
        "cooling_seconds": None,
        "recent_failures": 1,
    }


def test_health_detail_shares_the_cool_downs_of_every_process_through_redis(
    client_for, staff, settings, redis_cache, monkeypatch
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.LLM_COOLDOWN_FAILURES, settings.LLM_COOLDOWN_SECONDS = 1, 30
    name = f"east-{uuid.uuid4().hex[:8]}"
    LlmDeployment.objects.create(model=LlmModel.objects.get(alias="deepseek"), name=name)
    assert deployment_failure_record(name)
    monkeypatch.setattr(cooldown, "_local", {})  # this process forgets: only Redis knows
    monkeypatch.setattr(limits, "_local", limits._LocalCounters())
    (deployment,) = client_for(staff).get(DETAIL).json()["models"][0]["deployments"]
    assert deployment["state"] == "cooling" and deployment["recent_failures"] == 1


def test_health_detail_takes_a_staff_browser_session_too(client, staff, deployments):
    client.force_login(staff)
    response = client.get(DETAIL)
    assert response.status_code == 200
    assert response.json()["models"][0]["deployments"][0]["state"] == "cooling"


def test_health_detail_names_no_deployment_to_anyone_but_staff(anon_client, api_client, deployments):
    refused = api_client.get(DETAIL)
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "You do not have permission to perform this action.",
        "code": "permission_denied",
    }
    anonymous = anon_client.get(DETAIL)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    for response in (refused, anonymous):
        assert not any(name in response.content.decode() for name in deployments.values())


def test_plain_health_stays_cheap_with_deployments_cooling(
    anon_client, deployments, django_assert_num_queries
):
    # Nothing on the request's connection: the database check's SELECT 1 runs on its own.
    with django_assert_num_queries(0):
        response = anon_client.get(HEALTH)
    assert response.json() == {"status": "ok", "database": "ok", "cache": "local", "broker": "eager"}
    assert not any(name in response.content.decode() for name in deployments.values())


def test_health_detail_answers_the_plain_checks_when_the_database_is_down(
    client_for, staff, deployments, monkeypatch
):
    """Nobody can be authenticated without the database: 503 with the checks, no deployment."""
    client = client_for(staff)

    def down(self, request):
        raise OperationalError("connection refused")

    monkeypatch.setattr(BearerTokenAuthentication, "authenticate", down)
    monkeypatch.setattr(views, "database_status", lambda: "unavailable")
    response = client.get(DETAIL)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "cache": "local",
        "broker": "eager",
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_health_connection_closed_by_the_server_is_replaced_not_reported_down(anon_client, settings):
    """The server ends idle connections (a restart, an operator, a proxy): the check's kept
    connection is then dead, and the next check opens a new one instead of answering 503."""
    from pantheon import db_connections

    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert anon_client.get(HEALTH).json()["database"] == "ok"
    kept = db_connections._ping_connection
    assert kept is not None
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [kept.info.backend_pid])
    response = anon_client.get(HEALTH)
    assert response.status_code == 200 and response.json()["database"] == "ok"
    assert db_connections._ping_connection is not kept


def test_health_keeps_its_connection_from_one_check_to_the_next_idle_between_them(anon_client, settings):
    from pantheon import db_connections

    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert anon_client.get(HEALTH).json()["database"] == "ok"
    kept = db_connections._ping_connection
    assert anon_client.get(HEALTH).json()["database"] == "ok"
    assert db_connections._ping_connection is kept  # one connection per process, not one per check
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [kept.info.backend_pid])
        assert cursor.fetchone() == ("idle",)  # not "idle in transaction": it holds nothing


@pytest.mark.integration  # a redis-server of its own
@pytest.mark.django_db
def test_health_asks_redis_on_a_kept_connection_not_a_new_one_per_client(anon_client, own_redis):
    """Each request from a thread (a greenlet under the shipped worker) of its own, as a load
    balancer's probes arrive: Django's cache object is per thread and greenlet, with its own pool, so
    each probe used to open a connection to Redis."""

    def probe() -> dict:
        return anon_client.get("/api/v1/health").json()

    assert concurrently(probe)[0]["cache"] == "ok"  # connected once
    with connections_opened(own_redis) as opened:
        answers = [concurrently(probe)[0] for _ in range(5)]
    assert [a["cache"] for a in answers] == ["ok"] * 5
    assert opened[0] <= 1  # was one per probe


@pytest.mark.integration  # redis-servers of its own
@pytest.mark.django_db
def test_health_asks_the_broker_on_a_kept_connection_and_sees_it_go(anon_client, celery_broker, tmp_path):
    """A probe used to connect to the broker anew (and close); the process now keeps one connection
    and asks ``PING`` on it. A broker gone is reported at once (the connection is dropped), and the
    next check connects again."""
    with redis_server(log=tmp_path / "first.log") as first:
        celery_broker(first.url)
        assert anon_client.get(HEALTH).json()["broker"] == "ok"  # connected once
        with connections_opened(first.url) as opened:
            for _ in range(5):
                assert anon_client.get(HEALTH).json()["broker"] == "ok"
        assert opened == [0]
        first.stop()
        started = time.monotonic()
        gone = anon_client.get(HEALTH).json()
        assert gone["broker"] == "unavailable" and gone["status"] == "degraded"
        assert time.monotonic() - started < 2.5
    with redis_server(log=tmp_path / "second.log") as second:
        celery_broker(second.url)
        assert anon_client.get(HEALTH).json()["broker"] == "ok"
