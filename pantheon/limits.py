"""Counters shared by every web process, through the cache: rate-limit windows and concurrent slots
(e.g. a user's turns in flight). Counted atomically, never read-modify-write, so concurrent requests
cannot all read the same count and all pass.

On Redis each operation is one round trip: a small Lua script (loaded once, then sent by its SHA)
increments a counter and gives it its lifetime when it is new, or takes a slot and gives it back at
once when all were taken (docs/decisions.md says why scripts and not a pipeline). They go through
one ``redis.Redis`` client per process, on the configured cache's connection pool and shared by
every thread, with the cache's own keys (prefix, version), so ``cache.get`` reads the counters. Any
other cache (the embedded default's LocMemCache) counts with ``cache.add`` then ``incr``/``decr``.

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
from typing import Protocol, TypeVar

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A window's counter outlives its window by this margin, so it cannot expire (and be recreated
# without a lifetime) while a process whose clock lags a little still counts in it.
WINDOW_EXPIRY_MARGIN_SECONDS = 60
WARNING_INTERVAL_SECONDS = 60.0

_CACHE_ERRORS = (RedisError, OSError)

# KEYS the counters, ARGV their lifetimes in seconds (one each): their counts, in order. A count of 1
# is a counter just created (or, for a slot, one that held nothing), which gets its lifetime. One
# round trip for all the windows a request is counted in (a turn: the user's and the turns' rates).
_INCR_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  counts[i] = count
end
return counts
"""
# KEYS[1] the slots' counter, ARGV[1] its lifetime, ARGV[2] the limit: 1 taken, 0 all were taken.
_SLOT_ACQUIRE_SCRIPT = """
local taken = redis.call('INCR', KEYS[1])
if taken == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if taken > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
"""
# A counter that expired meanwhile is left alone: a bare DECR would recreate it at -1 without a
# lifetime, one slot too many for good.
_SLOT_RELEASE_SCRIPT = """
if (tonumber(redis.call('GET', KEYS[1])) or 0) > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class WindowHit:
    """One request counted in a fixed window: whether it is within the limit, and when the window
    ends (what a refused client should wait)."""

    allowed: bool
    count: int
    retry_after_seconds: int


class _Counters(Protocol):
    def add_and_incr_many(self, counters: list[tuple[str, float]]) -> list[int]: ...

    def slot_acquire(self, key: str, *, limit: int, ttl_seconds: float) -> bool: ...

    def decr(self, key: str) -> None: ...


class _SlotsByIncrement:
    """A slot taken as ``add_and_incr`` (given back with ``decr`` when over the limit)."""

    def add_and_incr(self, key: str, *, ttl_seconds: float) -> int:
        raise NotImplementedError

    def add_and_incr_many(self, counters: list[tuple[str, float]]) -> list[int]:
        """Each of ``(key, ttl_seconds)`` as ``add_and_incr``, in order."""
        return [self.add_and_incr(key, ttl_seconds=ttl) for key, ttl in counters]

    def decr(self, key: str) -> None:
        raise NotImplementedError

    def slot_acquire(self, key: str, *, limit: int, ttl_seconds: float) -> bool:
        if self.add_and_incr(key, ttl_seconds=ttl_seconds) > limit:
            self.decr(key)
            return False
        return True


class _LocalCounters(_SlotsByIncrement):
    """This process's counters, used while the cache is unreachable: the same operations, each
    under one lock, with the same expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key → (count, expires at, monotonic)
        self._values: dict[str, tuple[float, float]] = {}  # key → (value, expires at, monotonic)

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

    def value_set(self, key: str, value: float, *, ttl_seconds: float) -> None:
        with self._lock:
            self._values[key] = (value, time.monotonic() + ttl_seconds)

    def value_get(self, key: str) -> float | None:
        with self._lock:
            value, expires = self._values.get(key, (None, 0.0))
            return value if expires > time.monotonic() else None

    def count_get(self, key: str) -> int:
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            return count if expires > time.monotonic() else 0

    def holds(self, key: str) -> bool:
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            return count > 0 and expires > time.monotonic()

    def _prune(self, now: float) -> None:
        for store in (self._counts, self._values):
            for key in [k for k, (_, expires) in store.items() if expires <= now]:
                del store[key]


class _CacheCounters(_SlotsByIncrement):
    """Any Django cache (the embedded default's LocMemCache): ``add`` then ``incr``/``decr``, each
    atomic in the backend."""

    def add_and_incr(self, key: str, *, ttl_seconds: float) -> int:
        cache.add(key, 0, timeout=ttl_seconds)
        try:
            return cache.incr(key)
        except ValueError:  # evicted between add and incr (a full cache): count afresh
            cache.add(key, 0, timeout=ttl_seconds)
            return cache.incr(key)

    def decr(self, key: str) -> None:
        with contextlib.suppress(ValueError):  # the counter expired meanwhile: nothing to give back
            cache.decr(key)


def _whole(seconds: float) -> int:
    """EXPIRE takes whole seconds: rounded up, so a lifetime is never cut short."""
    return max(1, math.ceil(seconds))


class _RedisCounters:
    """The configured Redis cache, one round trip per operation (the scripts above) through one
    client for the whole process. ``config`` is the cache's settings it was made from."""

    def __init__(self, config: dict, backend: RedisCache) -> None:
        self.config = config
        # The cache's backend for this process: Django's ``cache`` is one object per thread, and per
        # greenlet under gevent, each with a connection pool of its own (a new connection to Redis
        # for every client connection that uses it).
        self.backend = backend
        # Django's RedisCache wraps its connection pool in a new redis.Redis for every operation
        # (building ~1,200 response callbacks each time); this client is made once, on the same pool.
        self.client = backend._cache.get_client(write=True)
        self._incr = self.client.register_script(_INCR_SCRIPT)
        self._acquire = self.client.register_script(_SLOT_ACQUIRE_SCRIPT)
        self._release = self.client.register_script(_SLOT_RELEASE_SCRIPT)

    def add_and_incr_many(self, counters: list[tuple[str, float]]) -> list[int]:
        counts = self._incr(
            keys=[self.backend.make_and_validate_key(key) for key, _ in counters],
            args=[_whole(ttl) for _, ttl in counters],
        )
        return [int(count) for count in counts]

    def slot_acquire(self, key: str, *, limit: int, ttl_seconds: float) -> bool:
        name = self.backend.make_and_validate_key(key)
        taken = self._acquire(keys=[name], args=[_whole(ttl_seconds), limit])
        return taken == 1

    def decr(self, key: str) -> None:
        self._release(keys=[self.backend.make_and_validate_key(key)])


class _SharedCounters:
    """The counters of the configured cache, made once per process and remade only when the cache's
    settings change (tests do; caches themselves are per thread in Django)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: _RedisCounters | None = None

    def get(self) -> _Counters:
        config = caches.settings[DEFAULT_CACHE_ALIAS]
        counters = self._counters
        if counters is not None and counters.config is config:
            return counters
        if not isinstance(caches[DEFAULT_CACHE_ALIAS], RedisCache):
            return _CACHE_COUNTERS
        with self._lock:
            if self._counters is None or self._counters.config is not config:
                self._counters = _RedisCounters(config, caches.create_connection(DEFAULT_CACHE_ALIAS))
            return self._counters


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


_CACHE_COUNTERS = _CacheCounters()
_shared = _SharedCounters()
_local = _LocalCounters()
_state = _CacheState()


def _with_fallback(shared: Callable[[_Counters], T], local: Callable[[_Counters], T]) -> T:
    """``shared`` on the cache's counters, or ``local`` on this process's when the cache fails or
    is being left alone."""
    if not _state.skipping():
        try:
            return shared(_shared.get())
        except _CACHE_ERRORS as exc:
            _state.failed(exc)
    return local(_local)


def shared_cache():
    """The configured cache as one object per process (on Redis: one connection pool), for what
    reads and writes the cache itself rather than a counter (lock-outs, cool-downs)."""
    counters = _shared.get()
    return counters.backend if isinstance(counters, _RedisCounters) else cache


def cache_ping() -> bool:
    """Ask Redis one question on this process's own client: one round trip on a kept connection.
    Django's cache object is per greenlet under gevent, each with a pool of its own, so asking it
    opened a new connection to Redis for every client connection (a load balancer's each probe).
    Raises when Redis does not answer; False when the cache is not Redis (nothing to ask)."""
    counters = _shared.get()
    if not isinstance(counters, _RedisCounters):
        return False
    counters.client.ping()
    return True


def _clock() -> float:
    return time.time()


@dataclass(frozen=True)
class Window:
    """A limit to count a request against: ``limit`` requests per ``seconds`` for ``key``."""

    key: str
    limit: int
    seconds: int


def window_hit(key: str, *, limit: int, window_seconds: int) -> WindowHit:
    """Count one request in the fixed window (aligned on the clock) that holds now, for ``key``."""
    return window_hits([Window(key, limit, window_seconds)])[0]


def window_hits(windows: list[Window]) -> list[WindowHit]:
    """Count one request in each of ``windows`` (one round trip for all), in order.

    The window's number is part of the counter's name, so a counter is only ever incremented within
    its window and expires after it; a new window starts from zero without anyone resetting it.
    """
    now = _clock()
    numbers = [int(now // w.seconds) for w in windows]
    counters = [
        (f"{w.key}:w{number}", w.seconds + WINDOW_EXPIRY_MARGIN_SECONDS)
        for w, number in zip(windows, numbers, strict=True)
    ]

    def hit(store: _Counters) -> list[int]:
        return store.add_and_incr_many(counters)

    counts = _with_fallback(hit, hit) if windows else []
    return [
        WindowHit(
            allowed=count <= w.limit,
            count=count,
            retry_after_seconds=max(1, math.ceil((number + 1) * w.seconds - now)),
        )
        for w, number, count in zip(windows, numbers, counts, strict=True)
    ]


def window_counts(keys: list[str], *, window_seconds: int) -> dict[str, int]:
    """What ``window_hit`` has counted for each of ``keys`` in the window that holds now (0: nothing),
    read without counting, in one round trip; counts this process kept while the cache was down are
    included (the larger of the two)."""
    number = int(_clock() // window_seconds)
    names = {key: f"{key}:w{number}" for key in keys}

    def shared(_: _Counters) -> dict[str, int]:
        found = shared_cache().get_many(list(names.values())) if names else {}
        return {key: int(found.get(name) or 0) for key, name in names.items()}

    counts = _with_fallback(shared, lambda _: dict.fromkeys(names, 0))
    return {key: max(counts[key], _local.count_get(name)) for key, name in names.items()}


def slot_acquire(key: str, *, limit: int, ttl_seconds: float) -> bool:
    """Take one of ``limit`` slots named ``key``; False when all are taken. The counter expires
    ``ttl_seconds`` after the first of its slots was taken (while none were held), so slots lost by
    a killed process come back by themselves."""

    def acquire(counters: _Counters) -> bool:
        return counters.slot_acquire(key, limit=limit, ttl_seconds=ttl_seconds)

    return _with_fallback(acquire, acquire)


def slot_release(key: str) -> None:
    # A slot taken from this process's counters while the cache was down goes back there.
    if _local.holds(key):
        _local.decr(key)
        return
    _with_fallback(lambda counters: counters.decr(key), lambda counters: None)


def lock_set(key: str, *, seconds: float) -> None:
    """Lock ``key`` for ``seconds`` (a later lock replaces an earlier one)."""
    until = _clock() + seconds

    def shared(_: _Counters) -> None:
        shared_cache().set(key, until, timeout=_whole(seconds))

    _with_fallback(shared, lambda _: _local.value_set(key, until, ttl_seconds=seconds))


def lock_remaining(key: str) -> int:
    """Whole seconds until ``key``'s lock ends; 0 when it is not locked."""
    until = _with_fallback(lambda _: shared_cache().get(key), lambda _: _local.value_get(key))
    return max(0, math.ceil(until - _clock())) if until is not None else 0
