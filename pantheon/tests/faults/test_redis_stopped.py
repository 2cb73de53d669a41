"""Fault: the Redis behind the cache stops while requests run. Nothing answers 500, logins stay
limited (per process from then on), turns commit, nothing is lost."""

import logging
import threading
from collections import Counter

import pytest

from pantheon.api import throttling
from pantheon.api.views import TokenView
from pantheon.testing.books import assert_nothing_lost
from pantheon.testing.processes import concurrently, http, redis_server
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.api.views import TurnViewSet
from sessions_app.models import Turn
from sessions_app.tests.factories import SessionFactory
from usage.services.tokens import api_token_issue
from usage.tests.factories import UserFactory

pytestmark = pytest.mark.faults

PASSWORD = "correct-horse-battery"


def _logins(url: str, username: str, count: int) -> Counter:
    body = {"username": username, "password": PASSWORD}
    return Counter(concurrently(*[lambda: http("POST", f"{url}/api/v1/auth/token", body)[0]] * count))


def test_redis_stopped_mid_load(
    wide_live_server, cache_at, one_window, settings, monkeypatch, tmp_path, caplog
):
    monkeypatch.setattr(TokenView, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(
        TurnViewSet, "throttle_classes", [throttling.UserRateThrottle, throttling.ScopedRateThrottle]
    )
    monkeypatch.setattr(
        throttling.ScopedRateThrottle, "THROTTLE_RATES", {"auth": "20/min", "turns": "600/min"}
    )
    monkeypatch.setattr(throttling.UserRateThrottle, "THROTTLE_RATES", {"user": "600/min"})
    settings.CACHE_RETRY_SECONDS = 0  # every request tries the dead Redis: the worst case
    user = UserFactory(password=PASSWORD)
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", model_alias="deepseek")
    session = SessionFactory(room=room)
    token = api_token_issue(user=user)[1]
    turn_statuses: list[int] = []
    redis_gone = threading.Event()

    def turns() -> None:
        for i in range(16):
            if i == 4:
                redis_gone.wait(timeout=60)
            status = http(
                "POST",
                f"{wide_live_server}/api/v1/sessions/{session.pk}/turns",
                {"user_input": f"@writer part {i}", "mode": "manual"},
                {"Authorization": f"Bearer {token}"},
            )[0]
            turn_statuses.append(status)

    with (
        caplog.at_level(logging.WARNING, logger="pantheon.limits"),
        redis_server(log=tmp_path / "redis.log") as redis,
    ):
        cache_at(redis.url)
        writer = threading.Thread(target=turns)
        writer.start()
        before = _logins(wide_live_server, user.username, 10)
        redis.stop()
        redis_gone.set()
        after = _logins(wide_live_server, user.username, 30)
        writer.join(timeout=120)

    assert before == {200: 10}  # counted on Redis
    assert after == {200: 20, 429: 10}  # Redis gone: this process counts from zero, never open
    assert turn_statuses == [201] * 16
    assert Turn.objects.filter(session=session).count() == 16
    assert len([r for r in caplog.records if "cache unreachable" in r.getMessage()]) == 1
    assert_nothing_lost()
