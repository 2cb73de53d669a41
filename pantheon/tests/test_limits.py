"""pantheon.limits: concurrent slots and windows counted atomically on Redis, and per process (never
open) while Redis cannot be reached."""

import logging
from functools import partial

import pytest
import redis
from django.core.cache import cache

from pantheon import limits
from pantheon.testing.processes import concurrently
from pantheon.testing.redis_commands import commands_sent, connections_opened


def _acquire_together(key: str, *, threads: int, limit: int) -> list[bool]:
    return concurrently(*[partial(limits.slot_acquire, key, limit=limit, ttl_seconds=60)] * threads)


def test_concurrent_slot_requests_on_redis_take_exactly_the_limit(redis_cache):
    assert sorted(_acquire_together("inflight:1", threads=24, limit=4)) == [False] * 20 + [True] * 4
    limits.slot_release("inflight:1")
    assert limits.slot_acquire("inflight:1", limit=4, ttl_seconds=60)
    assert not limits.slot_acquire("inflight:1", limit=4, ttl_seconds=60)


def test_slots_are_counted_per_process_while_the_cache_is_unreachable(cache_down, caplog):
    with caplog.at_level(logging.WARNING, logger="pantheon.limits"):
        assert sorted(_acquire_together("inflight:2", threads=24, limit=4)) == [False] * 20 + [True] * 4
    limits.slot_release("inflight:2")
    assert limits.slot_acquire("inflight:2", limit=4, ttl_seconds=60)
    assert len([r for r in caplog.records if r.name == "pantheon.limits"]) == 1


def test_a_slot_taken_while_the_cache_was_down_is_given_back_to_this_process(settings, redis_url, cache_down):
    assert limits.slot_acquire("inflight:3", limit=1, ttl_seconds=60)  # counted locally
    settings.CACHES = {**settings.CACHES}
    settings.CACHES["default"] = {**settings.CACHES["default"], "LOCATION": redis_url}
    limits._state.skip_until = 0.0  # the cache is back
    limits.slot_release("inflight:3")
    assert not limits._local.holds("inflight:3")
    assert limits.slot_acquire("inflight:3", limit=1, ttl_seconds=60)  # on Redis now


@pytest.mark.parametrize("minutes_later, warnings", [(0.5, 1), (1.5, 2)])
def test_the_cache_warning_is_logged_at_most_once_a_minute(
    cache_down, settings, monkeypatch, caplog, minutes_later, warnings
):
    settings.CACHE_RETRY_SECONDS = 0
    clock = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="pantheon.limits"):
        for _ in range(5):
            limits.window_hit("login:1", limit=100, window_seconds=60)
        clock[0] += minutes_later * 60
        for _ in range(5):
            limits.window_hit("login:1", limit=100, window_seconds=60)
    assert len([r for r in caplog.records if r.name == "pantheon.limits"]) == warnings


def test_after_a_failure_the_cache_is_left_alone_for_a_while(cache_down, settings, monkeypatch):
    """An unreachable Redis costs one failed attempt per CACHE_RETRY_SECONDS, not one per request."""
    settings.CACHE_RETRY_SECONDS = 5
    attempts = []
    connect = redis.connection.Connection.connect

    def counted_connect(connection):
        attempts.append(connection.port)
        return connect(connection)

    monkeypatch.setattr(redis.connection.Connection, "connect", counted_connect)
    for _ in range(10):
        assert limits.window_hit("login:2", limit=100, window_seconds=60).allowed
    assert len(attempts) == 1


# --- One round trip per operation, on the cache's own keys ------------------------------------


@pytest.mark.integration  # a redis-server of its own
def test_each_counter_operation_is_one_redis_command(own_redis):
    """A window hit, a slot taken, a slot refused, a slot given back: one round trip each (once the
    process has connected and the server knows the scripts)."""
    limits.window_hit("warm-up", limit=1, window_seconds=60)
    limits.slot_acquire("warm-up", limit=1, ttl_seconds=60)
    limits.slot_release("warm-up")
    operations = [
        lambda: limits.window_hit("login:7", limit=5, window_seconds=60).count,
        lambda: limits.slot_acquire("inflight:7", limit=1, ttl_seconds=60),
        lambda: limits.slot_acquire("inflight:7", limit=1, ttl_seconds=60),
        lambda: limits.slot_release("inflight:7"),
    ]
    results = []
    for operation in operations:
        with commands_sent(own_redis) as sent:
            result = operation()
        results.append((result, [command.split()[0] for command in sent]))
    assert results == [(1, ["EVALSHA"]), (True, ["EVALSHA"]), (False, ["EVALSHA"]), (None, ["EVALSHA"])]


def test_counters_are_the_caches_own_keys_and_expire(redis_cache, redis_url, one_window):
    """Same prefix and version as ``cache.get`` reads, and every counter has its lifetime (whole
    seconds, rounded up)."""
    server = redis.Redis.from_url(redis_url)
    for _ in range(2):
        limits.window_hit("login:8", limit=5, window_seconds=60)
    window = "login:8:w30000000"  # 1_800_000_030 // 60
    assert cache.get(window) == 2
    assert 60 < server.ttl(cache.make_and_validate_key(window)) <= 60 + limits.WINDOW_EXPIRY_MARGIN_SECONDS

    assert limits.slot_acquire("inflight:8", limit=2, ttl_seconds=29.2)  # turns' lifetimes are floats
    assert cache.get("inflight:8") == 1
    assert 0 < server.ttl(cache.make_and_validate_key("inflight:8")) <= 30
    limits.slot_release("inflight:8")
    assert cache.get("inflight:8") == 0


def test_giving_back_a_slot_whose_counter_expired_leaves_no_counter_behind(redis_cache):
    """Otherwise the counter would come back at -1 without a lifetime: one slot too many for good."""
    assert limits.slot_acquire("inflight:9", limit=1, ttl_seconds=60)
    cache.delete("inflight:9")  # expired while the turn ran
    limits.slot_release("inflight:9")
    assert cache.get("inflight:9") is None
    assert limits.slot_acquire("inflight:9", limit=1, ttl_seconds=60)
    assert not limits.slot_acquire("inflight:9", limit=1, ttl_seconds=60)


def test_every_thread_counts_through_one_redis_client(redis_cache):
    """Django's caches are per thread and build a client per operation; the counters' client is one
    per process, on one connection pool."""
    counters = concurrently(*[limits._shared.get] * 8)
    assert len({id(c.client) for c in counters}) == 1
    assert isinstance(counters[0].client, redis.Redis)


@pytest.mark.integration  # a redis-server of its own
def test_lock_outs_and_cool_downs_use_the_process_connections_from_any_thread(own_redis):
    """Django's ``cache`` is one object per thread (per greenlet under gevent), each with a Redis
    connection pool of its own: reading a lock-out or a cool-down from each new client connection
    used to open a connection to Redis every time."""
    from usage.cooldown import deployments_cooling

    def reads() -> None:
        limits.lock_remaining("login:someone:lock")
        deployments_cooling(["primary"])

    concurrently(reads)  # the process's pool connects once
    with connections_opened(own_redis) as opened:
        for _ in range(5):
            concurrently(reads)
    assert opened[0] <= 1
