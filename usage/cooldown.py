"""Deployments that keep failing are left alone for a while (LiteLLM's ``allowed_fails`` and
``cooldown_time``): ``LLM_COOLDOWN_FAILURES`` failures within ``LLM_COOLDOWN_WINDOW_SECONDS`` cool a
deployment down for ``LLM_COOLDOWN_SECONDS``.

Failures are counted and cool-downs kept in the cache (Redis), so every web and worker process
skips the same deployment. Without Redis both fall back to this process's memory (failures through
``pantheon.limits``, which already does; cool-downs here): fallbacks then learn per process.
"""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from pantheon.limits import shared_cache, window_counts, window_hit
from usage.selectors import deployments_list

logger = logging.getLogger(__name__)

_PREFIX = "llm:cooldown:"
_FAILURES = "llm:fails:"
_local: dict[str, float] = {}  # name → until (time.time()), when the cache cannot be reached
_lock = threading.Lock()


def deployment_failure_record(name: str) -> bool:
    """Count a failure of deployment ``name``; True when it starts a cool-down."""
    hit = window_hit(
        _FAILURES + name,
        limit=settings.LLM_COOLDOWN_FAILURES - 1,
        window_seconds=settings.LLM_COOLDOWN_WINDOW_SECONDS,
    )
    if hit.allowed:
        return False
    until = time.time() + settings.LLM_COOLDOWN_SECONDS
    with _lock:
        _local[name] = until
    try:
        shared_cache().set(_PREFIX + name, until, timeout=settings.LLM_COOLDOWN_SECONDS)
    except (RedisError, OSError) as exc:
        logger.warning("cache unreachable (%s): deployment %s cools down in this process only", exc, name)
    logger.warning(
        "llm deployment %s failed %s times within %s s: cooling down for %s s",
        name,
        hit.count,
        settings.LLM_COOLDOWN_WINDOW_SECONDS,
        settings.LLM_COOLDOWN_SECONDS,
    )
    return True


def deployments_cooling(names: list[str]) -> dict[str, float]:
    """Of ``names``, those cooling down, each with the seconds it has left."""
    now = time.time()
    try:
        shared = shared_cache().get_many([_PREFIX + n for n in names]) if names else {}
    except (RedisError, OSError):
        shared = {}
    with _lock:
        local = {n: until for n, until in _local.items() if until > now}
    cooling = {}
    for name in names:
        until = max(float(shared.get(_PREFIX + name) or 0), local.get(name, 0.0))
        if until > now:
            cooling[name] = round(until - now, 1)
    return cooling


@dataclass(frozen=True)
class DeploymentHealth:
    """A deployment as operators watch it (``/health/detail``, ``/metrics``, the admin)."""

    alias: str
    name: str
    position: int
    cooling_seconds: float | None  # seconds left of its cool-down; None: calls may go to it
    recent_failures: int  # failures counted in the current cool-down window

    @property
    def state(self) -> str:
        return "ok" if self.cooling_seconds is None else "cooling"


def deployments_health() -> list[DeploymentHealth]:
    """Every active deployment of an active catalog model, by alias and order, with its cool-down
    and its recent failures: one query and two cache reads, whatever their number."""
    rows = list(deployments_list().filter(is_active=True).values_list("model__alias", "name", "position"))
    return deployments_health_of(rows)


def deployments_health_of(rows: list[tuple[str, str, int]]) -> list[DeploymentHealth]:
    """``deployments_health`` of (alias, name, position) rows already read."""
    names = [name for _, name, _ in rows]
    cooling = deployments_cooling(names)
    failures = window_counts(
        [_FAILURES + name for name in names], window_seconds=settings.LLM_COOLDOWN_WINDOW_SECONDS
    )
    return [
        DeploymentHealth(
            alias=alias,
            name=name,
            position=position,
            cooling_seconds=cooling.get(name),
            recent_failures=failures[_FAILURES + name],
        )
        for alias, name, position in rows
    ]
