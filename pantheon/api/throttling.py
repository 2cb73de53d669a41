"""DRF's throttles (same scopes, rates and cache keys), counted atomically.

DRF's own ``SimpleRateThrottle`` reads the request history from the cache, appends and writes it
back: concurrent requests all read the same history and all pass (120 simultaneous turns at 60/min
let 89 through). These count each request with one atomic increment in a fixed window
(``pantheon.limits.window_hits``), which also keeps counting per process when the cache is down.
The first of a view's throttles to be asked counts the request in every window of the view's
throttles at once (one Redis round trip for a turn's user and turns rates, not one each); the
others read their answer from the request.
"""

from rest_framework import throttling

from pantheon.client import client_address
from pantheon.limits import Window, WindowHit, window_hits


class AtomicWindowThrottle(throttling.SimpleRateThrottle):
    """``allow_request`` and ``wait`` over a fixed-window counter; subclasses say whose requests
    are counted together (``get_cache_key``), exactly as in DRF."""

    retry_after_seconds: int | None = None

    def get_ident(self, request) -> str:
        """The client's address through the trusted proxies only (``pantheon.client``): DRF's own
        takes ``X-Forwarded-For`` as sent, so a new header each request started a new count."""
        return client_address(request)

    def window(self, request, view) -> Window | None:
        """The window this throttle counts the request in; None: not counted (no rate, or not a
        request of its kind, e.g. an authenticated one for the anonymous rate)."""
        if self.rate is None:
            return None
        key = self.get_cache_key(request, view)
        return None if key is None else Window(key, self.num_requests, self.duration)

    def allow_request(self, request, view) -> bool:
        window = self.window(request, view)
        if window is None:
            return True
        hit = _hits_of(request, view).get(window) or window_hits([window])[0]
        self.retry_after_seconds = None if hit.allowed else hit.retry_after_seconds
        return hit.allowed

    def wait(self) -> float | None:
        return self.retry_after_seconds


def _hits_of(request, view) -> dict[Window, WindowHit]:
    """The request counted in the windows of all the view's throttles, once per request."""
    hits = getattr(request, "_window_hits", None)
    if hits is None:
        windows = [
            window
            for throttle in view.get_throttles()
            if isinstance(throttle, AtomicWindowThrottle) and (window := throttle.window(request, view))
        ]
        hits = request._window_hits = dict(zip(windows, window_hits(windows), strict=True))
    return hits


class AnonRateThrottle(throttling.AnonRateThrottle, AtomicWindowThrottle):
    """Anonymous clients, by address (scope ``anon``)."""


class UserRateThrottle(throttling.UserRateThrottle, AtomicWindowThrottle):
    """Authenticated users, by id; anonymous ones by address (scope ``user``)."""


class ScopedRateThrottle(throttling.ScopedRateThrottle, AtomicWindowThrottle):
    """Views that name a ``throttle_scope`` (``turns``, ``auth``, ``register``), per user or address."""

    def window(self, request, view) -> Window | None:
        # DRF's ScopedRateThrottle learns its scope and rate from the view in allow_request, which
        # the first throttle asked has not called on this one yet: the same steps, here.
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return None
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().window(request, view)
