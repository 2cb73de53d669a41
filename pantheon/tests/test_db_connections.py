"""The pool's warm-up and the connection given back before a model call (pantheon/db_connections.py),
on a pool of their own against the test database."""

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from pantheon import db_connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def pooled(monkeypatch):
    """A wrapper of the test database with a pool of 2 (the test settings run without one), as
    ``connections["pooled"]`` for the module under test; ``pooled(port=1)`` for one nobody answers."""
    made = []

    def make(port: str | None = None, *, size: int = 2, timeout: float = 5):
        default = connections["default"]
        pool = {"min_size": 1, "max_size": size, "timeout": timeout}
        options = {**default.settings_dict["OPTIONS"], "pool": pool}
        settings_dict = {**default.settings_dict, "OPTIONS": options, "CONN_HEALTH_CHECKS": True}
        if port is not None:
            settings_dict["PORT"] = port
        wrapper = type(default)(settings_dict, alias=f"pooled{len(made)}")
        made.append(wrapper)
        connections[wrapper.alias] = wrapper  # for transaction.atomic(using=…), this thread only
        monkeypatch.setattr(db_connections, "connections", {"pooled": wrapper})
        return wrapper

    yield make
    for wrapper in made:
        wrapper.close()
        wrapper.close_pool()
        del connections[wrapper.alias]


def test_warm_up_opens_the_pool_with_a_connection_ready(pooled):
    wrapper = pooled()
    assert db_connections.pool_warm(alias="pooled") is True
    assert wrapper.pool.get_stats()["pool_available"] >= 1
    # It waited for the first connection instead of asking early, which makes the pool open one more
    # (not warmed: see below).
    assert wrapper.pool.get_stats()["pool_size"] == 1


def test_warm_up_without_a_database_gives_up_and_leaves_the_pool_usable(pooled):
    """psycopg_pool's own ``wait()`` closes a pool that is not full in time, for good: a worker
    started while the database was down would never serve. The warm-up leaves it opening."""
    wrapper = pooled(port="1")
    assert db_connections.pool_warm(alias="pooled", timeout=0.5) is False
    assert not wrapper.pool.closed


def test_warm_up_does_nothing_without_a_pool(monkeypatch):
    monkeypatch.setattr(db_connections, "connections", {"pooled": connections["default"]})
    assert db_connections.pool_warm(alias="pooled") is False


def test_a_connection_is_given_back_to_the_pool_outside_a_transaction_only(pooled):
    wrapper = pooled()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    with transaction.atomic(using=wrapper.alias):
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert db_connections.connection_release(alias="pooled") is False
        assert wrapper.connection is not None
    assert db_connections.connection_release(alias="pooled") is True
    assert wrapper.connection is None
    assert db_connections.connection_release(alias="pooled") is False  # nothing held any more


def test_nothing_is_given_back_without_a_pool(monkeypatch):
    """A persistent connection outside any transaction (the test's own is inside one) stays."""
    default = connections["default"]
    unpooled = type(default)({**default.settings_dict}, alias="unpooled")
    monkeypatch.setattr(db_connections, "connections", {"pooled": unpooled})
    unpooled.ensure_connection()
    try:
        assert not unpooled.in_atomic_block
        assert db_connections.connection_release(alias="pooled") is False
        assert unpooled.connection is not None
    finally:
        unpooled.close()


def _last_query(pid: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction keeps its first look otherwise
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row[0] if row else None


def test_a_well_idle_connection_is_handed_out_without_a_query(pooled):
    """Django's own check runs an empty query on every handout (a round trip per request)."""
    pool = pooled(size=1).pool
    pool.open()
    held = pool.getconn()
    held.execute("SELECT 'the last thing it ran'")
    pid = held.info.backend_pid
    pool.putconn(held)
    again = pool.getconn()
    try:
        assert again.info.backend_pid == pid  # the pool's one connection, checked on its way out
        assert _last_query(pid) == "SELECT 'the last thing it ran'"
    finally:
        pool.putconn(again)


def test_a_connection_the_server_ended_while_idle_is_replaced(pooled):
    pool = pooled(size=1).pool
    pool.open()
    held = pool.getconn()
    pid = held.info.backend_pid
    pool.putconn(held)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while _last_query(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    fresh = pool.getconn()
    try:
        assert fresh.info.backend_pid != pid
        assert fresh.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.putconn(fresh)
    assert pool.get_stats()["connections_lost"] == 1


def test_the_check_asks_the_server_when_the_connection_has_something_to_say(pooled):
    """Nothing to read: no query. Something the server sent unasked (here a notification): the empty
    query, which reads it."""
    import psycopg

    params = connections["default"].get_connection_params()
    params.pop("prepare_threshold", None)
    with (
        psycopg.connect(autocommit=True, **params) as quiet,
        psycopg.connect(autocommit=True, **params) as other,
    ):
        quiet.execute("LISTEN pantheon_check")
        quiet.execute("SELECT 'before the check'")
        db_connections.pooled_check(quiet)
        assert _last_query(quiet.info.backend_pid) == "SELECT 'before the check'"
        other.execute("NOTIFY pantheon_check")
        deadline = time.monotonic() + 5
        while not db_connections._socket_signals(quiet.pgconn.socket) and time.monotonic() < deadline:
            time.sleep(0.02)
        db_connections.pooled_check(quiet)
        assert _last_query(quiet.info.backend_pid) == ""


@pytest.fixture
def down_forgotten(monkeypatch):
    monkeypatch.setattr(db_connections, "_verdicts", {})


def test_a_database_that_is_down_fails_a_request_in_seconds_not_the_pools_timeout(
    pooled, settings, down_forgotten
):
    settings.DATABASE_POOL_CHECK_AFTER_SECONDS = 0.3
    wrapper = pooled(port="1", timeout=30)  # nobody listens there
    started = time.monotonic()
    with pytest.raises(OperationalError):
        wrapper.ensure_connection()
    assert time.monotonic() - started < 5
    # Remembered a moment: the next request does not try to connect again.
    with pytest.raises(Exception, match="did not answer a moment ago"):
        db_connections.database_answers_check(wrapper)


def test_a_busy_pool_is_waited_for_past_the_check_when_the_database_answers(pooled, settings, down_forgotten):
    settings.DATABASE_POOL_CHECK_AFTER_SECONDS = 0.2
    wrapper = pooled(size=1, timeout=10)
    pool = wrapper.pool
    pool.open()
    held = pool.getconn()
    threading.Timer(1.0, pool.putconn, [held]).start()  # the pool's one connection, back in 1 s
    started = time.monotonic()
    wrapper.ensure_connection()
    try:
        assert 0.9 < time.monotonic() - started < 5
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        wrapper.close()


def test_a_database_that_answered_is_not_asked_again_within_the_second(pooled, down_forgotten):
    wrapper = pooled()
    db_connections.database_answers_check(wrapper)
    wrapper.settings_dict["PORT"] = "1"  # were it asked again, nobody would answer
    db_connections.database_answers_check(wrapper)
    db_connections._verdicts[wrapper.alias] = (0.0, True)  # the second has passed
    with pytest.raises(Exception, match=r"(?i)connect"):
        db_connections.database_answers_check(wrapper)


def test_the_pools_first_connections_plan_every_table_before_they_are_handed_out(pooled):
    """PostgreSQL loads a table's catalog entries the first time a statement names it: a pool's first
    connections plan one statement over every table first, so the first turns on them do not. One the
    pool opens because more are wanted at once (a burst) is not warmed: that would load PostgreSQL
    when it is busiest."""
    pool = pooled(size=2).pool  # at least 1, at most 2
    assert db_connections.pool_warm(alias="pooled", timeout=5) is True
    first = pool.getconn()
    grown = pool.getconn()
    try:
        warmed = _last_query(first.info.backend_pid)
        assert not _last_query(grown.info.backend_pid).startswith("EXPLAIN")
    finally:
        pool.putconn(first)
        pool.putconn(grown)
    assert warmed.startswith("EXPLAIN (SELECT NULL FROM ")
    # (pg_stat_activity keeps the first 1,024 bytes of a statement: the tables sorted first)
    for table in ("auth_user", "rooms_agent", "rooms_room", "sessions_app_session", "sessions_app_turn"):
        assert f'"{table}"' in warmed
