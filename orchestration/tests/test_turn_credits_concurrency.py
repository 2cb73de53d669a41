"""Credits under concurrency, with real threads and transactions on PostgreSQL: holds never let
simultaneous turns spend the same credits, and twins with one Idempotency-Key run the models once."""

import threading
from decimal import Decimal

import pytest
from django.db import connections
from django.db.models import Sum
from rest_framework.test import APIClient

from orchestration.testing.fake_server import Step
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.models import ChatSession, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.tokens import api_token_issue
from usage.tests.factories import balance_set

# serialized_rollback: the flush after a transactional test must not lose the seeded catalog.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.integration,
]


def post_all(token: str, requests: list[tuple[str, dict, dict]]) -> list:
    """POST every (path, body, headers) at once, each from its own thread and connection."""
    barrier = threading.Barrier(len(requests))
    responses: list = [None] * len(requests)

    def worker(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        path, body, headers = requests[i]
        try:
            barrier.wait()
            responses[i] = client.post(path, body, format="json", **headers)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return responses


def room_with_sessions(user, count: int) -> list:
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Writer", model_alias="deepseek", position=0)
    AgentFactory(room=room, agent_key="critic", name="Critic", model_alias="qwen", position=1)
    return [SessionFactory(room=room) for _ in range(count)]


def test_twenty_turns_with_credits_for_three_worst_cases_exactly_three_succeed(user, fake_llm, settings):
    settings.TURNS_IN_FLIGHT_PER_USER = 50  # this test is about holds, not the in-flight cap
    fake_llm.set_latency(400)
    sessions = room_with_sessions(user, 10)
    token = api_token_issue(user=user)[1]
    balance_set(user, Decimal(0))
    [probe] = post_all(
        token, [(f"/api/v1/sessions/{sessions[0].pk}/turns", {"user_input": "@writer go"}, {})]
    )
    worst = Decimal(probe.json()["required_credits"])
    balance_set(user, worst * 3)
    # The provider reports the full output allowance and more input than planned: every turn costs
    # its worst case or more.
    full = {"prompt_tokens": 5_000, "completion_tokens": 2048, "total_tokens": 7048}
    fake_llm.enqueue(*[Step(usage=full) for _ in range(20)])

    responses = post_all(
        token,
        [
            (f"/api/v1/sessions/{s.pk}/turns", {"user_input": "@writer go"}, {})
            for s in sessions
            for _ in range(2)
        ],
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [402] * 17, statuses
    account = CreditAccount.objects.get(user=user)
    assert account.balance >= 0
    assert account.balance == CreditLedgerEntry.objects.filter(user=user).aggregate(s=Sum("amount"))["s"]
    assert account.held == 0 and not CreditHold.objects.exists()
    assert Turn.objects.filter(session__in=sessions).count() == 3
    assert len(fake_llm.requests) == 3  # a refused turn makes no call
    assert not ChatSession.objects.filter(claim_token__isnull=False).exists()
    billed = LlmCallEvent.objects.aggregate(b=Sum("credits_burned"), u=Sum("credits_unbilled"))
    assert billed["b"] == worst * 3 - account.balance and billed["u"] > 0


def test_ten_orchestrator_twins_with_one_key_route_and_run_once(user, fake_llm, settings):
    settings.TURNS_IN_FLIGHT_PER_USER = 50
    fake_llm.set_latency(100)
    [session] = room_with_sessions(user, 1)
    token = api_token_issue(user=user)[1]
    path = f"/api/v1/sessions/{session.pk}/turns"
    body = {"user_input": "Who should take this?", "mode": "orchestrator"}

    responses = post_all(token, [(path, body, {"HTTP_IDEMPOTENCY_KEY": "one-key"})] * 10)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    routing = [r for r in fake_llm.requests if "response_format" in r.body]
    assert len(routing) == 1
    assert LlmCallEvent.objects.filter(orphaned=True).count() == 0
    assert Turn.objects.filter(session=session).count() == 1
    assert CreditAccount.objects.get(user=user).held == 0
