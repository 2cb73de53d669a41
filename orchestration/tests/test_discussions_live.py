"""Discussions through a real server and real threads: the events of a streamed discussion in order,
a client that leaves mid-discussion, and the credit cap under concurrent discussions on PostgreSQL."""

import json
from decimal import Decimal

import pytest
from django.db.models import Sum

from orchestration.services.calls import reply_clean
from orchestration.testing.fake_server import Step
from orchestration.tests.test_turn_credits_concurrency import post_all
from sessions_app.models import ChatSession, Message, Turn
from sessions_app.tests.factories import SessionFactory
from sessions_app.tests.test_api_turn_stream import EventStream, assert_nothing_left, wait_for
from usage.models import CreditAccount, CreditHold, LlmCallEvent
from usage.services.tokens import api_token_issue
from usage.tests.factories import balance_set

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.integration,
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen")),
]

WRITER, CRITIC, MANAGER = "deepseek/deepseek-chat", "qwen/qwen-2.5-72b-instruct", "openai/gpt-4o-mini"


@pytest.fixture
def token(user) -> str:
    return api_token_issue(user=user)[1]


@pytest.fixture
def manager(fake_llm, settings):
    settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS = "gpt-4o-mini"
    return fake_llm


def decide(*keys: str, done: bool = False) -> Step:
    return Step(model=MANAGER, reply=json.dumps({"selected_agent_keys": list(keys), "done": done}))


def test_a_streamed_discussion_sends_every_step_as_agent_events_in_order(
    live_server, token, user, session, manager
):
    manager.enqueue(decide("writer"), decide("critic"), decide("writer"), decide(done=True))
    body = {"user_input": "Debate", "mode": "orchestrator", "discussion": {"until": {"max_steps": 6}}}
    stream = EventStream(live_server, token, session, body)
    assert stream.response.status == 201
    events = list(stream.events())
    names = [n for n, _ in events if n != "agent.delta"]
    assert names == [
        "turn.started",
        *["discussion.step", "agent.started", "agent.completed"] * 3,
        "turn.completed",
    ]
    steps = [d for n, d in events if n == "discussion.step"]
    assert [(s["step"], s["agent_key"]) for s in steps] == [(1, "writer"), (2, "critic"), (3, "writer")]
    completed = events[-1][1]
    assert completed["stop_reason"] == "manager_done" and completed["status"] == "completed"
    stored = Message.objects.filter(turn_id=completed["id"], role="assistant").order_by("order")
    parts: list[str] = []
    for name, data in events:
        if name == "agent.started":
            parts.append("")
        elif name == "agent.delta":
            parts[-1] += data["text"]
    assert [reply_clean(p) for p in parts] == [m.content for m in stored]
    assert_nothing_left(user, session)


def test_a_client_that_leaves_mid_discussion_stops_it_after_the_running_step(
    live_server, token, user, session, manager
):
    step = Step(model=WRITER, reply="A long opening the client will not see end.", gate_after=1)
    manager.enqueue(decide("writer"), decide("critic"), decide("writer"), step)
    body = {"user_input": "Debate", "mode": "orchestrator", "discussion": {"until": {"max_steps": 6}}}
    stream = EventStream(live_server, token, session, body)
    events = stream.events()
    while next(events)[0] != "agent.delta":
        pass
    stream.close()  # the client leaves during step 1
    step.release()

    wait_for(lambda: Turn.objects.filter(session=session).exists())
    turn = Turn.objects.get(session=session)
    assert turn.status == "partial" and turn.stop_reason == "client_disconnected"
    assert [e["code"] for e in turn.agent_errors] == ["client_disconnected"]
    assert Message.objects.get(turn=turn, role="assistant").content == step.reply  # read to its end
    # No further agent is called (the server may learn the client left only after the manager's
    # next decision: that call is recorded, unbilled).
    agents_called = [r.model for r in manager.requests if r.model != MANAGER]
    assert agents_called == [WRITER]
    events = LlmCallEvent.objects.filter(turn_id=turn.pk)
    assert events.filter(purpose="agent_reply").count() == 1
    assert events.filter(purpose="routing").count() == len(manager.requests) - 1
    assert [s["agent_key"] for s in turn.discussion["steps"] if s.get("outcome") == "replied"] == ["writer"]
    wait_for(lambda: ChatSession.objects.get(pk=session.pk).claim_token is None)
    assert_nothing_left(user, session)


def test_concurrent_capped_discussions_never_spend_more_than_the_balance(user, room, manager, settings):
    """Eight discussions at once, each capped at 6 credits, with 20 credits: at most three are held
    at once, none passes its cap, and the account ends exactly where its ledger says."""
    settings.TURNS_IN_FLIGHT_PER_USER = 50
    manager.set_latency(50)
    balance_set(user, Decimal(20))
    full = {"prompt_tokens": 500, "completion_tokens": 2000, "total_tokens": 2500}
    manager.enqueue(*[decide("writer", "critic") for _ in range(80)])
    manager.enqueue(*[Step(model=m, usage=full) for m in (WRITER, CRITIC) for _ in range(80)])
    sessions = [SessionFactory(room=room) for _ in range(8)]
    discussion = {"until": {"max_steps": 20, "max_credits": "6"}, "allow_repeat": True}
    responses = post_all(
        api_token_issue(user=user)[1],
        [
            (
                f"/api/v1/sessions/{s.pk}/turns",
                {"user_input": "Debate", "mode": "orchestrator", "discussion": discussion},
                {},
            )
            for s in sessions
        ],
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 402} and 201 in statuses and 402 in statuses, statuses
    for response in responses:
        if response.status_code == 201:
            body = response.json()
            assert body["stop_reason"] == "max_credits"
            assert Decimal(body["usage"]["credits_burned"]) <= Decimal(6)
    account = CreditAccount.objects.get(user=user)
    spent = LlmCallEvent.objects.filter(billable=True).aggregate(s=Sum("credits_burned"))["s"]
    assert account.balance == Decimal(20) - spent >= 0
    assert account.held == 0 and not CreditHold.objects.exists()
