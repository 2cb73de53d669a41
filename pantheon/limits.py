"""Counters shared by every web process, through the cache: rate-limit windows and concurrent slots
(e.g. a user's turns in flight). Counted atomically (``cache.add`` then ``incr``/``decr``), never
read-modify-write, so concurrent requests cannot all read the same count and all pass.

The cache (Redis) is optional at run time. When it cannot be reached the counters fall back to this
process's memory: limits then hold per process (weaker, but never open — a limit that disappears with
Redis would reopen password guessing). A warning says so at most once a minute, and the cache is not
tried again for ``CACHE_RETRY_SECONDS``, so an outage does not cost every request a socket timeout.
"""

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A window's counter outlives its window by this margin, so it cannot expire (and be recreated
# without a lifetime) while a process whose clock lags a little still counts in it.
WINDOW_EXPIRY_MARGIN_SECONDS = 60
WARNING_INTERVAL_SECONDS = 60.0

_CACHE_ERRORS = (RedisError, OSError)


@dataclass(frozen=True)
class WindowHit:
    """One request counted in a fixed window: whether it is within the limit, and when the window
    ends (what a refused client should wait)."""

    allowed: bool
    count: int
    retry_after_seconds: int


class _LocalCounters:
    """This process's counters, used while the cache is unreachable: the same operations, each
    under one lock, with the same expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key → (count, expires at, monotonic)

    def add_and_incr(self, key: str, *, ttl_seconds: float) -> int:
        with self._lock:
            now = time.monotonic()
            count, expires = self._counts.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + ttl_seconds
                self._prune(now)
            self._counts[key] = (count + 1, expires)
            return count + 1

    def decr(self, key: str) -> None:
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            if count > 0 and expires > time.monotonic():
                self._counts[key] = (count - 1, expires)

    def holds(self, key: str) -> bool:
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            return count > 0 and expires > time.monotonic()

    def _prune(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._counts.items() if expires <= now]:
            del self._counts[key]


class _CacheState:
    """Whether the cache is being skipped after a failure, and when the last warning was logged."""

    def __init__(self) -> None:
        self.skip_until = 0.0
        self.warned_at = -math.inf
        self.lock = threading.Lock()

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            self.skip_until = now + settings.CACHE_RETRY_SECONDS
            warn = now - self.warned_at >= WARNING_INTERVAL_SECONDS
            if warn:
                self.warned_at = now
        if warn:
            logger.warning(
                "cache unreachable (%s: %s): rate limits and slots are counted per process",
                type(exc).__name__,
                exc,
            )

    def skipping(self) -> bool:
        return time.monotonic() < self.skip_until


_local = _LocalCounters()
_state = _CacheState()


def _with_fallback(shared: Callable[[], T], local: Callable[[], T]) -> T:
    if not _state.skipping():
        try:
            return shared()
        except _CACHE_ERRORS as exc:
            _state.failed(exc)
    return local()


def _clock() -> float:
    return time.time()


def window_hit(key: str, *, limit: int, window_seconds: int) -> WindowHit:
    """Count one request in the fixed window (aligned on the clock) that holds now, for ``key``.

    The window's number is part of the counter's name, so a counter is only ever incremented within
    its window and expires after it; a new window starts from zero without anyone resetting it.
    """
    now = _clock()
    number = int(now // window_seconds)
    name = f"{key}:w{number}"
    ttl = window_seconds + WINDOW_EXPIRY_MARGIN_SECONDS

    def shared() -> int:
        cache.add(name, 0, timeout=ttl)
        try:
            return cache.incr(name)
        except ValueError:  # evicted between add and incr (a full cache): count afresh
            cache.add(name, 0, timeout=ttl)
            return cache.incr(name)

    count = _with_fallback(shared, lambda: _local.add_and_incr(name, ttl_seconds=ttl))
    retry_after = max(1, math.ceil((number + 1) * window_seconds - now))
    return WindowHit(allowed=count <= limit, count=count, retry_after_seconds=retry_after)


def slot_acquire(key: str, *, limit: int, ttl_seconds: int) -> bool:
    """Take one of ``limit`` slots named ``key``; False when all are taken. The counter expires
    ``ttl_seconds`` after its creation, so slots lost by a killed process come back by themselves."""

    def shared() -> bool:
        cache.add(key, 0, timeout=ttl_seconds)
        taken = cache.incr(key)
        if taken > limit:
            cache.decr(key)
            return False
        return True

    def local() -> bool:
        if _local.add_and_incr(key, ttl_seconds=ttl_seconds) > limit:
            _local.decr(key)
            return False
        return True

    return _with_fallback(shared, local)


def slot_release(key: str) -> None:
    # A slot taken from this process's counters while the cache was down goes back there.
    if _local.holds(key):
        _local.decr(key)
        return

    def shared() -> None:
        with contextlib.suppress(ValueError):  # the counter expired meanwhile: nothing to give back
            cache.decr(key)

    _with_fallback(shared, lambda: None)
