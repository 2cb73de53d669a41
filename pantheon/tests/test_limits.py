"""pantheon.limits: concurrent slots and windows counted atomically on Redis, and per process (never
open) while Redis cannot be reached."""

import logging
from functools import partial

import pytest
from django.core.cache import caches

from pantheon import limits
from pantheon.testing.processes import concurrently


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

    class CountedCache:
        def __getattr__(self, name):
            attempts.append(name)
            return getattr(caches["default"], name)

    monkeypatch.setattr(limits, "cache", CountedCache())
    for _ in range(10):
        assert limits.window_hit("login:2", limit=100, window_seconds=60).allowed
    assert attempts == ["add"]
