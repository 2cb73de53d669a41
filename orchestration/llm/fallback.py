"""Which deployments a call tries, in which order, and which failures move it to the next one.

A failure that is the provider's — no connection, no answer in time, rate limited, a 5xx, a stream
dropped before it said anything — falls over; a 4xx that is the request's fault (bad request,
moderation, auth, out of credits) would fail the same way anywhere, so it does not. A stream falls
over only before its first delta: once the user has seen part of a reply, the turn goes on as it
always did (the reply is partial).
"""

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from django.conf import settings

from usage.cooldown import deployments_cooling

FALLOVER_CODES = frozenset(
    {
        "provider_connection_error",
        "provider_timeout",
        "provider_rate_limited",
        "provider_unavailable",  # any 5xx (and 408)
        "provider_stream_cut",
        "deployment_misconfigured",  # its key's environment variable is not set
    }
)


class Route(Protocol):
    name: str
    position: int
    weight: int


R = TypeVar("R", bound=Route)


def _draw(route: Route) -> tuple[int, int, float]:
    """Sort key: a weighted random order within a position (Efraimidis–Spirakis: u ** (1 / weight),
    largest first), weight 0 last."""
    if route.weight <= 0:
        return (route.position, 1, 0.0)
    return (route.position, 0, -(random.random() ** (1 / route.weight)))


def fallover_allowed(code: str, *, delivered: bool) -> bool:
    return code in FALLOVER_CODES and not delivered


def attempts_plan(routes: Sequence[R]) -> list[R]:
    """At most ``LLM_FALLBACK_MAX_ATTEMPTS`` routes: by position, equal positions in a random order
    weighted by ``weight`` (weight 0: drained, after every weighted one of its position, so reached
    only when they fail); those cooling down after every other (tried only when none is left)."""
    order = sorted(routes, key=_draw)
    cooling = deployments_cooling([r.name for r in order if r.name])
    ready = [r for r in order if r.name not in cooling]
    return (ready + [r for r in order if r.name in cooling])[: max(settings.LLM_FALLBACK_MAX_ATTEMPTS, 1)]
