"""Counters shared by every web process, through the cache: concurrent slots (e.g. a user's turns in
flight). Counted atomically (``cache.add`` then ``incr``/``decr``), never read-modify-write."""

import contextlib

from django.core.cache import cache


def slot_acquire(key: str, *, limit: int, ttl_seconds: int) -> bool:
    """Take one of ``limit`` slots named ``key``; False when all are taken. The counter expires
    ``ttl_seconds`` after its creation, so slots lost by a killed process come back by themselves."""
    cache.add(key, 0, timeout=ttl_seconds)
    taken = cache.incr(key)
    if taken > limit:
        cache.decr(key)
        return False
    return True


def slot_release(key: str) -> None:
    with contextlib.suppress(ValueError):  # the counter expired meanwhile: nothing to give back
        cache.decr(key)
