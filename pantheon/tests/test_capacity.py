"""Capacity (issue 16): gunicorn as shipped (gevent workers, a connection pool per worker) holds many
turns at once while the model thinks, answers health meanwhile, keeps its database connections
bounded, refuses past its cap at once, and two instances share every limit through PostgreSQL and
Redis. Behaviour only: each waits for the fake provider to hold the calls, never on a stopwatch."""

import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection

from pantheon.testing.books import assert_nothing_lost
from pantheon.testing.processes import app_env, gunicorn, http
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.models import ChatSession, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditAccount, CreditHold
from usage.services.accounts import credit_adjust
from usage.services.tokens import api_token_issue
from usage.tests.factories import UserFactory

pytestmark = pytest.mark.integration


def _env(database_url, redis_url, fake_llm, **overrides):
    return app_env(
        **{
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "LLM_PROVIDER": "openai",
            "LLM_BASE_URL": fake_llm.base_url,
            "LLM_API_KEY": "test-key",
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT_SECONDS": "60",
            "API_THROTTLE_TURNS": "1000/min",
            "API_THROTTLE_USER": "10000/min",
            "LOG_LEVEL": "WARNING",
            **overrides,
        }
    )


def _sessions(count: int, *, per_user: int = 1) -> list[tuple[str, dict]]:
    """``count`` sessions (each in a room with the writer), ``per_user`` of them per user:
    (turns URL, auth headers)."""
    out = []
    for i in range(count):
        if i % per_user == 0:
            user = UserFactory()
            auth = {"Authorization": f"Bearer {api_token_issue(user=user)[1]}"}
            room = RoomFactory(owner=user)
            AgentFactory(room=room, agent_key="writer", model_alias="deepseek")
        session = SessionFactory(room=room)
        out.append((f"/api/v1/sessions/{session.pk}/turns", auth))
    return out


class Crowd:
    """Clients, each a thread with its own request, started together; their answers as they come."""

    def __init__(self, calls: list[Callable[[], tuple]]) -> None:
        self.answers: list[tuple] = []
        self._threads = [threading.Thread(target=lambda c=c: self.answers.append(c())) for c in calls]
        for thread in self._threads:
            thread.start()

    def join(self) -> list[tuple]:
        for thread in self._threads:
            thread.join(timeout=120)
        return self.answers


def _turn(server, url: str, auth: dict, text: str = "@writer go", **headers) -> Callable[[], tuple]:
    return lambda: http("POST", server.url + url, {"user_input": text}, {**auth, **headers}, timeout=120)


def _until(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _connections_of_others() -> int:
    """Connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_health_and_lists_answer_while_the_provider_holds_forty_turns(
    database_url, redis_url, fake_llm, tmp_path
):
    """One gevent worker: 40 turns (more than the 24 the thread-bound config held at once across
    3 workers) all reach the provider together, and health and a list answer while they wait."""
    sessions = _sessions(40)
    fake_llm.set_latency(20_000)
    env = _env(database_url, redis_url, fake_llm)
    with gunicorn(env=env, log=tmp_path / "gunicorn.log", workers=1) as server:
        crowd = Crowd([_turn(server, url, auth) for url, auth in sessions])
        _until(lambda: len(fake_llm.requests) == 40, "all 40 turns in the provider at once")
        health = http("GET", f"{server.url}/api/v1/health", timeout=30)
        rooms = http("GET", f"{server.url}/api/v1/rooms", headers=sessions[0][1], timeout=30)
        assert not crowd.answers  # answered while every turn was still waiting on the model
        fake_llm.answer_waiting()
        answers = crowd.join()

    assert health[0] == 200 and health[1]["database"] == "ok", health[1]
    assert rooms[0] == 200
    assert sorted(a[0] for a in answers) == [201] * 40
    assert_nothing_lost()


def test_a_hundred_waiting_turns_hold_no_more_connections_than_the_pools(
    database_url, redis_url, fake_llm, tmp_path
):
    sessions = _sessions(100, per_user=25)
    fake_llm.set_latency(20_000)
    env = _env(database_url, redis_url, fake_llm, DATABASE_POOL_MAX_SIZE="3", TURNS_IN_FLIGHT_PER_USER="25")
    with gunicorn(env=env, log=tmp_path / "gunicorn.log", workers=2) as server:
        crowd = Crowd([_turn(server, url, auth) for url, auth in sessions])
        _until(lambda: len(fake_llm.requests) == 100, "all 100 turns in the provider at once", timeout=90)
        waiting = _connections_of_others()
        assert not crowd.answers
        fake_llm.answer_waiting()
        answers = crowd.join()

    # workers × (pool + the health check's own connection), whatever the turns in flight (it was one
    # per turn)
    assert waiting <= 2 * (3 + 1)
    assert sorted(a[0] for a in answers) == [201] * 100
    assert_nothing_lost()


def test_past_the_process_cap_a_turn_is_refused_at_once_and_holds_nothing(
    database_url, redis_url, fake_llm, tmp_path
):
    sessions = _sessions(4)
    fake_llm.set_latency(15_000)
    env = _env(database_url, redis_url, fake_llm, TURNS_IN_FLIGHT_PER_PROCESS="3")
    with gunicorn(env=env, log=tmp_path / "gunicorn.log", workers=1) as server:
        crowd = Crowd([_turn(server, url, auth) for url, auth in sessions[:3]])
        _until(lambda: len(fake_llm.requests) == 3, "three turns in the provider")
        status, body, headers = http(
            "POST", server.url + sessions[3][0], {"user_input": "@writer go"}, sessions[3][1]
        )
        held_meanwhile = CreditHold.objects.count()
        refused_session = ChatSession.objects.get(pk=sessions[3][0].split("/")[4])
        assert not crowd.answers
        fake_llm.answer_waiting()
        answers = crowd.join()
        fake_llm.set_latency(0)
        after = http("POST", server.url + sessions[3][0], {"user_input": "@writer go"}, sessions[3][1])

    assert status == 503 and body["code"] == "server_busy", body
    assert headers["Retry-After"] == "5"
    assert held_meanwhile == 3  # the three running turns' holds, none for the refused one
    assert refused_session.claim_token is None and refused_session.last_turn_index == 0
    assert len(fake_llm.requests) == 4  # the refused turn never called the model; the later one did
    assert sorted(a[0] for a in answers) == [201] * 3 and after[0] == 201  # the place was given back
    assert_nothing_lost()


def test_gevent_workers_keep_claims_holds_slots_and_idempotency_twins(
    database_url, redis_url, fake_llm, user, session, tmp_path
):
    """The concurrency guarantees under real greenlets, with real concurrent clients."""
    auth = {"Authorization": f"Bearer {api_token_issue(user=user)[1]}"}
    url = f"/api/v1/sessions/{session.pk}/turns"
    fake_llm.set_latency(300)
    env = _env(database_url, redis_url, fake_llm, TURNS_IN_FLIGHT_PER_USER="6", TURN_CLAIM_WAIT_SECONDS="30")
    with gunicorn(env=env, log=tmp_path / "gunicorn.log", workers=2) as server:
        # Claims: six turns on one session at once queue on its claim and take consecutive indices.
        same_session = Crowd([_turn(server, url, auth, f"@writer {i}") for i in range(6)]).join()
        # Slots: 9 at once on 9 sessions, at most 6 in flight for the user (across both workers).
        fake_llm.set_latency(3000)
        others = [SessionFactory(room=session.room) for _ in range(9)]
        before = len(fake_llm.requests)
        crowd = Crowd([_turn(server, f"/api/v1/sessions/{s.pk}/turns", auth) for s in others])
        _until(
            lambda: len(crowd.answers) == 3 and len(fake_llm.requests) == before + 6,
            "six turns in the provider, three refused",
        )
        fake_llm.answer_waiting()
        slots = crowd.join()
        fake_llm.set_latency(300)
        # Idempotency twins: the same key twice at once makes one turn, both answered with it.
        twins = Crowd([_turn(server, url, auth, "@writer twin", **{"Idempotency-Key": "twin-1"})] * 2).join()
        # Holds: a balance covering two turns' worst case, four turns at once on four sessions.
        one = Crowd([_turn(server, f"/api/v1/sessions/{SessionFactory(room=session.room).pk}/turns", auth)])
        _until(CreditHold.objects.exists, "a turn's hold in flight")
        worst = CreditHold.objects.get().amount
        one.join()
        holds = _holds_race(server, worst)

    assert sorted(a[0] for a in same_session) == [201] * 6
    indices = sorted(Turn.objects.filter(session=session).values_list("turn_index", flat=True))
    assert indices == list(range(1, len(indices) + 1))  # consecutive, none taken twice
    statuses = sorted(a[0] for a in slots)
    assert statuses == [201] * 6 + [429] * 3, statuses
    assert sorted(a[0] for a in twins) in ([200, 201], [201, 201]), twins
    assert twins[0][1]["id"] == twins[1][1]["id"]
    assert Turn.objects.filter(session=session, user_input="@writer twin").count() == 1
    assert sorted(a[0] for a in holds) == [201, 201, 402, 402], holds
    assert_nothing_lost()


def _holds_race(server, worst) -> list[tuple]:
    """A user whose balance covers two and a half worst cases, four turns at once on fresh sessions."""
    (first, auth), *rest = _sessions(4, per_user=4)
    account = CreditAccount.objects.get(user=ChatSession.objects.get(pk=first.split("/")[4]).room.owner)
    credit_adjust(
        user=account.user,
        amount=(2 * worst + worst / 2).quantize(Decimal("0.0001")) - account.balance,
        note="capacity test",
    )
    return Crowd([_turn(server, url, auth) for url, _ in [(first, auth), *rest]]).join()


def test_two_web_instances_share_in_flight_limits_claims_holds_and_throttles(
    database_url, redis_url, fake_llm, tmp_path
):
    """Two gunicorn servers on two ports, one PostgreSQL and one Redis: each limit holds across them
    exactly as within one."""
    env = _env(
        database_url,
        redis_url,
        fake_llm,
        TURNS_IN_FLIGHT_PER_USER="2",
        TURN_CLAIM_WAIT_SECONDS="0.5",
        API_THROTTLE_TURNS="3/min",
    )
    slots, claim, holds, throttled = (_sessions(n, per_user=n) for n in (3, 1, 2, 4))
    fake_llm.set_latency(10_000)
    with (
        gunicorn(env=env, log=tmp_path / "a.log", workers=1) as a,
        gunicorn(env=env, log=tmp_path / "b.log", workers=1) as b,
    ):

        def while_in_flight(started: list[tuple], then: tuple, calls: int) -> tuple:
            crowd = Crowd([_turn(server, url, auth) for server, url, auth in started])
            _until(lambda: len(fake_llm.requests) == calls, "the first turns in the provider")
            server, url, auth = then
            answer = http("POST", server.url + url, {"user_input": "@writer go"}, auth)
            fake_llm.answer_waiting()
            assert sorted(x[0] for x in crowd.join()) == [201] * len(started)
            return answer

        # The user's in-flight limit (2): one turn on each instance, the third refused on either.
        in_flight = while_in_flight([(a, *slots[0]), (b, *slots[1])], (a, *slots[2]), calls=2)
        # A session's claim: a turn on it through A, another through B waits, then 409.
        busy = while_in_flight([(a, *claim[0])], (b, *claim[0]), calls=3)
        # The credit hold: a balance covering one and a half worst cases; one turn through each.
        user = ChatSession.objects.get(pk=holds[0][0].split("/")[4]).room.owner
        worst = _worst_case_seen(a, _sessions(1)[0], fake_llm)
        account = CreditAccount.objects.get(user=user)
        credit_adjust(
            user=user, amount=(worst + worst / 2).quantize(Decimal("0.0001")) - account.balance, note="test"
        )
        unpaid = while_in_flight([(a, *holds[0])], (b, *holds[1]), calls=5)
        # The turns throttle (3 a minute): two through A, one through B, the fourth through B refused.
        fake_llm.set_latency(0)
        paced = [
            http("POST", s.url + url, {"user_input": "@writer go"}, auth)
            for s, (url, auth) in zip((a, a, b, b), throttled, strict=True)
        ]

    assert in_flight[0] == 429 and in_flight[1]["code"] == "throttled", in_flight[1]
    assert busy[0] == 409 and busy[1]["code"] == "turn_conflict", busy[1]
    assert unpaid[0] == 402 and unpaid[1]["code"] == "insufficient_credits", unpaid[1]
    assert [p[0] for p in paced] == [201, 201, 201, 429] and paced[3][1]["code"] == "throttled"
    assert_nothing_lost()


def _worst_case_seen(server, session: tuple[str, dict], fake_llm) -> Decimal:
    """The hold of a turn on a fresh session of the writer, read while it is in flight."""
    url, auth = session
    before = len(fake_llm.requests)
    crowd = Crowd([_turn(server, url, auth)])
    _until(lambda: len(fake_llm.requests) > before, "a turn in the provider, its hold placed")
    worst = CreditHold.objects.get().amount
    fake_llm.answer_waiting()
    crowd.join()
    return worst
