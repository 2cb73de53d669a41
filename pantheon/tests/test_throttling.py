"""Rate limits counted atomically: concurrent requests cannot pass a limit together, on Redis; and
with Redis unreachable they still hold, per process, and nothing answers 500."""

import logging
from collections import Counter
from functools import partial

import pytest

from pantheon.api import throttling
from pantheon.api.views import RegisterView, TokenView
from pantheon.testing.processes import concurrently, http
from pantheon.testing.redis_commands import commands_sent
from rooms.api.views import RoomViewSet
from rooms.tests.factories import RoomFactory
from sessions_app.api.views import TurnViewSet
from sessions_app.tests.factories import SessionFactory
from usage.services.tokens import api_token_issue
from usage.tests.factories import UserFactory

PASSWORD = "correct-horse-battery"


def _post_all(url: str, bodies: list[dict], *, headers: dict, threads: int) -> Counter:
    """POST every body, ``threads`` at a time, all threads released together; count the statuses."""

    def share(bodies: list[dict]) -> list[int]:
        return [http("POST", url, body, headers)[0] for body in bodies]

    shares = concurrently(*[partial(share, bodies[i::threads]) for i in range(threads)])
    return Counter(status for statuses in shares for status in statuses)


def test_120_concurrent_turn_posts_at_60_per_minute_pass_at_most_60(
    wide_live_server, redis_cache, one_window, monkeypatch
):
    """The turns scope counts before the turn runs: a body that then fails validation (400) costs
    nothing but still counts, so 120 concurrent POSTs test the counter and not the turn engine.
    32 client threads (the database allows ~100 connections) send them all at once."""
    monkeypatch.setattr(TurnViewSet, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", {"turns": "60/min"})
    user = UserFactory()
    session = SessionFactory(room=RoomFactory(owner=user))
    token = api_token_issue(user=user)[1]

    statuses = _post_all(
        f"{wide_live_server}/api/v1/sessions/{session.pk}/turns",
        [{"user_input": "", "mode": "manual"}] * 120,
        headers={"Authorization": f"Bearer {token}"},
        threads=32,
    )

    assert statuses == {400: 60, 429: 60}


def test_80_concurrent_logins_at_20_per_minute_pass_at_most_20(
    wide_live_server, redis_cache, one_window, monkeypatch
):
    monkeypatch.setattr(TokenView, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", {"auth": "20/min"})
    user = UserFactory(password=PASSWORD)

    statuses = _post_all(
        f"{wide_live_server}/api/v1/auth/token",
        [{"username": user.username, "password": PASSWORD}] * 80,
        headers={},
        threads=32,
    )

    assert statuses == {200: 20, 429: 60}


@pytest.mark.django_db
def test_a_throttled_request_says_when_its_window_ends(anon_client, user, redis_cache, monkeypatch):
    monkeypatch.setattr(TokenView, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", {"auth": "2/min"})
    monkeypatch.setattr("pantheon.limits._clock", lambda: 1_800_000_015.2)  # 44.8 s before the next minute
    body = {"username": user.username, "password": "wrong"}
    statuses = [anon_client.post("/api/v1/auth/token", body).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    throttled = anon_client.post("/api/v1/auth/token", body)
    assert throttled.status_code == 429
    assert throttled.json() == {"detail": throttled.json()["detail"], "code": "throttled"}
    assert throttled["Retry-After"] == "45"


@pytest.mark.django_db
def test_a_new_window_starts_from_zero(anon_client, user, redis_cache, monkeypatch):
    monkeypatch.setattr(TokenView, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", {"auth": "1/min"})
    now = [1_800_000_059.0]
    monkeypatch.setattr("pantheon.limits._clock", lambda: now[0])
    body = {"username": user.username, "password": "wrong"}
    assert [anon_client.post("/api/v1/auth/token", body).status_code for _ in range(2)] == [400, 429]
    now[0] += 2  # the next minute
    assert anon_client.post("/api/v1/auth/token", body).status_code == 400


@pytest.mark.integration  # a redis-server of its own
@pytest.mark.django_db
def test_a_turn_sends_redis_three_commands_at_most(turn_post, own_redis, fake_llm, monkeypatch, caplog):
    """The production throttles (anon: not counted for a user; user; the turns scope) in one round
    trip, the user's in-flight slot taken and given back in one each, once connected and the scripts
    known."""
    monkeypatch.setattr(
        TurnViewSet,
        "throttle_classes",
        [throttling.AnonRateThrottle, throttling.UserRateThrottle, throttling.ScopedRateThrottle],
    )
    assert turn_post("@writer warm up").status_code == 201
    with caplog.at_level(logging.WARNING, logger="pantheon.limits"), commands_sent(own_redis) as sent:
        assert turn_post("@writer hello").status_code == 201
    assert len(sent) <= 3, sent
    counted = [command for command in sent if "throttle_user_" in str(command)]
    assert len(counted) == 1 and "throttle_turns_" in str(counted[0]), sent  # both windows, one command
    assert not [r for r in caplog.records if r.name == "pantheon.limits"]  # counted on Redis, not locally


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rates", "statuses"),
    [
        ({"user": "2/min", "turns": "100/min"}, [201, 201, 429, 429]),  # the user's rate decides
        ({"user": "100/min", "turns": "3/min"}, [201, 201, 201, 429]),  # the turns' rate decides
    ],
)
def test_a_turn_is_counted_in_each_of_its_throttles_windows(
    turn_post, redis_cache, one_window, fake_llm, monkeypatch, rates, statuses
):
    """Counted together in one round trip, each window still answers for its own rate; a refused
    turn still counts in every window (as DRF's throttles count it)."""
    monkeypatch.setattr(
        TurnViewSet, "throttle_classes", [throttling.UserRateThrottle, throttling.ScopedRateThrottle]
    )
    monkeypatch.setattr(throttling.UserRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", rates)
    assert [turn_post(f"@writer {i}").status_code for i in range(4)] == statuses


# --- Redis unreachable ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_the_cache_unreachable_logins_are_still_limited_per_process(
    anon_client, user, cache_down, one_window, monkeypatch, settings, caplog
):
    """Never fail open: password guessing must not reopen because Redis is gone. One warning."""
    monkeypatch.setattr(TokenView, "throttle_classes", [throttling.ScopedRateThrottle])
    monkeypatch.setattr(throttling.ScopedRateThrottle, "THROTTLE_RATES", {"auth": "20/min"})
    settings.CACHE_RETRY_SECONDS = 0  # try Redis on every request
    settings.LOGIN_FAILURES_PER_USERNAME = 1000  # the throttle alone (the lockout: tests/attacks)
    body = {"username": user.username, "password": "wrong"}
    with caplog.at_level(logging.WARNING, logger="pantheon.limits"):
        statuses = Counter(anon_client.post("/api/v1/auth/token", body).status_code for _ in range(30))
    assert statuses == {400: 20, 429: 10}
    warnings = [r for r in caplog.records if r.name == "pantheon.limits"]
    assert len(warnings) == 1
    assert "counted per process" in warnings[0].getMessage()


@pytest.mark.django_db
def test_with_the_cache_unreachable_no_endpoint_answers_500(anon_client, cache_down, monkeypatch):
    """Every default throttle (anon, user) and the auth scope on the way: register, rooms, turns."""
    for view in (RegisterView, TokenView, RoomViewSet, TurnViewSet):
        monkeypatch.setattr(
            view,
            "throttle_classes",
            [throttling.AnonRateThrottle, throttling.UserRateThrottle, throttling.ScopedRateThrottle],
        )
    registered = anon_client.post("/api/v1/auth/register", {"username": "ada", "password": PASSWORD})
    assert registered.status_code == 201
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {registered.json()['token']}")
    room = anon_client.post("/api/v1/rooms", {"name": "Lab"})
    assert room.status_code == 201
    assert anon_client.get("/api/v1/rooms").status_code == 200
    agent = anon_client.post(
        f"/api/v1/rooms/{room.json()['id']}/agents",
        {"agent_key": "writer", "name": "Writer", "model_alias": "deepseek", "role_prompt": "Write."},
    )
    assert agent.status_code == 201
    session = anon_client.post(f"/api/v1/rooms/{room.json()['id']}/sessions", {"title": "s"})
    turn = anon_client.post(
        f"/api/v1/sessions/{session.json()['id']}/turns", {"user_input": "@writer hi", "mode": "manual"}
    )
    assert turn.status_code == 201
