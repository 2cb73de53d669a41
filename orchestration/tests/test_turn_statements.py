"""A turn's database round trips, as Server-Timing counts them (every statement through the
connection): at most eight, the same for one agent or three, for a new session or one of a thousand
turns. Transactional, as in production: the commit's transaction is the outermost one (no savepoints)."""

import re
from decimal import Decimal

import pytest
from django.db import connection

from orchestration.context import turn_context_tokens
from orchestration.turns import store
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.models import ChatSession, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import LlmModel, TokenCalibration

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("summaries_queued"),
]

STATEMENTS_MAX = 8


@pytest.fixture
def summaries_queued():
    """As in production, a summary a turn asks for is queued for a worker (the tests' in-memory
    broker), not made inside the request as the embedded default does."""
    from pantheon.celery import app

    saved, app.conf.task_always_eager = app.conf.task_always_eager, False
    yield
    app.conf.task_always_eager = saved


def statements_of(response) -> int:
    return int(re.search(r'db;dur=[0-9.]+;desc="(\d+) queries"', response["Server-Timing"]).group(1))


def session_with_history(user, *, agents: int, turns: int):
    room = RoomFactory(owner=user)
    for position, key in enumerate(["writer", "critic", "editor"][:agents]):
        AgentFactory(room=room, agent_key=key, name=key.title(), model_alias="deepseek", position=position)
    session = SessionFactory(room=room)
    Turn.objects.bulk_create(
        Turn(
            session=session,
            turn_index=i,
            mode="manual",
            user_input=f"question {i}",
            assistant_output=f"Writer: answer {i}",
            status="completed",
            context_tokens=turn_context_tokens(
                user_input=f"question {i}", assistant_output=f"Writer: answer {i}"
            ),
        )
        for i in range(1, turns + 1)
    )
    ChatSession.objects.filter(pk=session.pk).update(last_turn_index=turns)
    return session


def test_a_turn_takes_at_most_eight_statements_whatever_its_agents_and_history(api_client, user, fake_llm):
    counts = {}
    for agents, mode in ((1, "manual"), (3, "roundtable")):
        for turns in (0, 10, 1000):
            session = session_with_history(user, agents=agents, turns=turns)
            response = api_client.post(
                f"/api/v1/sessions/{session.pk}/turns",
                {"user_input": "@writer go", "mode": mode},
                format="json",
            )
            assert response.status_code == 201, response.content
            assert len(response.json()["responding_agent_keys"]) == agents
            counts[(agents, turns)] = statements_of(response)
    assert max(counts.values()) <= STATEMENTS_MAX, counts
    assert len(set(counts.values())) == 1, counts  # nor more with agents or history


def test_an_orchestrator_turn_and_a_replay_stay_within_the_bound(api_client, user, fake_llm):
    session = session_with_history(user, agents=3, turns=10)
    path = f"/api/v1/sessions/{session.pk}/turns"
    body = {"user_input": "who should answer?", "mode": "orchestrator"}
    routed = api_client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert routed.status_code == 201 and statements_of(routed) <= STATEMENTS_MAX
    replayed = api_client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert replayed.status_code == 200 and statements_of(replayed) <= STATEMENTS_MAX


def test_a_calibrated_model_is_read_with_the_catalog_not_after_it(api_client, user, fake_llm, settings):
    """The token calibration comes with the catalog in the turn's first statement: a turn on a
    calibrated model takes exactly the statements of one on an uncalibrated model."""

    def turn() -> int:
        session = session_with_history(user, agents=1, turns=10)
        response = api_client.post(
            f"/api/v1/sessions/{session.pk}/turns", {"user_input": "@writer go"}, format="json"
        )
        assert response.status_code == 201, response.content
        return statements_of(response)

    plain = turn()
    TokenCalibration.objects.create(
        model=LlmModel.objects.get(alias="deepseek"),
        ratio=Decimal("1.4"),
        samples=settings.TOKEN_CALIBRATION_MIN_SAMPLES,
    )
    assert turn() == plain


def _plans_of(statement_start: str) -> tuple[int, int]:
    """(generic, custom) plans PostgreSQL made so far for this connection's prepared statement that
    begins with ``statement_start``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE ltrim(statement, E' \\n') LIKE %s",
            [statement_start.strip()[:60] + "%"],
        )
        rows = cursor.fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def test_the_scope_statement_is_planned_once_per_connection_not_on_every_turn(user):
    """psycopg prepares it on its second run; PostgreSQL then makes custom plans for five runs and
    keeps the generic one from there unless the custom ones look cheaper. With the catalog's tiny
    tables never analyzed (as here, and in production until 50 rows change), a constant list of
    aliases made them look cheaper, and every turn planned the statement again."""
    session = session_with_history(user, agents=1, turns=3)
    for _ in range(9):
        scope = store.scope_load(
            user_id=user.pk, session_id=session.pk, idempotency_key=None, aliases={"deepseek"}
        )
        assert scope is not None and [a.agent_key for a in scope.agents] == ["writer"]
    generic, custom = _plans_of(store._SCOPE_SQL)
    assert custom <= 5 and generic >= 1, (generic, custom)


def test_psycopg_keeps_its_parse_of_the_commit_statement(api_client, user, fake_llm, monkeypatch):
    """The commit (~7,600 bytes, ~55 parameters) is past psycopg's own limits for keeping a
    statement's parse: the backend raises them (pantheon/postgresql), or every turn parses it again."""
    from psycopg import _queries

    parsed_again: list[int] = []
    uncached = _queries._query2pg_nocache

    def spy(query, encoding):
        parsed_again.append(len(query))
        return uncached(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg_nocache", spy)
    session = session_with_history(user, agents=1, turns=2)
    for _ in range(2):
        response = api_client.post(
            f"/api/v1/sessions/{session.pk}/turns", {"user_input": "@writer go"}, format="json"
        )
        assert response.status_code == 201, response.content
    assert parsed_again == []
