"""DRF's throttles (same scopes, rates and cache keys), counted atomically.

DRF's own ``SimpleRateThrottle`` reads the request history from the cache, appends and writes it
back: concurrent requests all read the same history and all pass (120 simultaneous turns at 60/min
let 89 through). These count each request with one atomic increment in a fixed window
(``pantheon.limits.window_hit``: one Redis round trip per throttle), which also keeps counting per
process when the cache is down.
"""

from rest_framework import throttling

from pantheon.client import client_address
from pantheon.limits import window_hit


class AtomicWindowThrottle(throttling.SimpleRateThrottle):
    """``allow_request`` and ``wait`` over a fixed-window counter; subclasses say whose requests
    are counted together (``get_cache_key``), exactly as in DRF."""

    retry_after_seconds: int | None = None

    def get_ident(self, request) -> str:
        """The client's address through the trusted proxies only (``pantheon.client``): DRF's own
        takes ``X-Forwarded-For`` as sent, so a new header each request started a new count."""
        return client_address(request)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        hit = window_hit(key, limit=self.num_requests, window_seconds=self.duration)
        self.retry_after_seconds = None if hit.allowed else hit.retry_after_seconds
        return hit.allowed

    def wait(self) -> float | None:
        return self.retry_after_seconds


class AnonRateThrottle(throttling.AnonRateThrottle, AtomicWindowThrottle):
    """Anonymous clients, by address (scope ``anon``)."""


class UserRateThrottle(throttling.UserRateThrottle, AtomicWindowThrottle):
    """Authenticated users, by id; anonymous ones by address (scope ``user``)."""


class ScopedRateThrottle(throttling.ScopedRateThrottle, AtomicWindowThrottle):
    """Views that name a ``throttle_scope`` (``turns``, ``auth``, ``register``), per user or address."""
