"""Streamed turns (Server-Sent Events) through a real server, against the fake provider: the words
arrive as they are written, usage is metered exactly like a plain turn's, and a client that leaves
costs nothing that is not recorded."""

import http.client
import json
import socket
import time
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.db.models import Sum

from orchestration.services.calls import reply_clean
from orchestration.testing.fake_server import Step
from sessions_app.models import ChatSession, Message, Turn
from usage.models import CreditAccount, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.tokens import api_token_issue
from usage.tests.factories import balance_set

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.integration,
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen")),
]

WRITER, CRITIC = "deepseek/deepseek-chat", "qwen/qwen-2.5-72b-instruct"


@pytest.fixture
def token(user) -> str:
    return api_token_issue(user=user)[1]


class EventStream:
    """A streamed turn read event by event from a raw HTTP connection."""

    def __init__(self, live_server, token, session, body, headers=None):
        url = urlsplit(live_server.url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.conn.request(
            "POST",
            f"/api/v1/sessions/{session.pk}/turns",
            body=json.dumps(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
                **(headers or {}),
            },
        )
        self.sock = self.conn.sock
        self.response = self.conn.getresponse()

    def events(self):
        name = None
        while line := self.response.readline():
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                yield name, json.loads(line[6:])

    def close(self):
        """Leave as a client would: the connection is gone, mid-stream."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.response.close()


def stream_turn(live_server, token, session, text, mode="manual", headers=None):
    stream = EventStream(live_server, token, session, {"user_input": text, "mode": mode}, headers)
    assert stream.response.status in (200, 201), stream.response.read()
    assert stream.response.getheader("Content-Type") == "text/event-stream"
    return list(stream.events())


def assert_nothing_left(user, session) -> None:
    account = CreditAccount.objects.get(user=user)
    assert account.held == 0 and not CreditHold.objects.exists()
    assert account.balance == CreditLedgerEntry.objects.filter(user=user).aggregate(s=Sum("amount"))["s"]
    assert ChatSession.objects.get(pk=session.pk).claim_token is None


def wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_first_words_arrive_while_the_provider_still_holds_the_rest(
    live_server, token, user, session, fake_llm
):
    step = Step(model=WRITER, reply="The keeper climbs the stairs at dusk.", gate_after=1)
    fake_llm.enqueue(step)
    stream = EventStream(live_server, token, session, {"user_input": "@writer begin", "stream": True})
    events = stream.events()

    assert next(events)[0] == "turn.started"
    assert next(events)[0] == "agent.started"
    name, first = next(events)
    assert name == "agent.delta" and first == {"agent_key": "writer", "text": "The"}
    assert step.held.is_set() and not step.released.is_set()  # the provider holds the rest back

    step.release()
    rest = list(events)
    deltas = [first["text"]] + [d["text"] for n, d in rest if n == "agent.delta"]
    completed = dict(rest)["turn.completed"]
    assert completed["status"] == "completed" and completed["timing"]["llm_ms"] > 0
    stored = Message.objects.get(turn_id=completed["id"], role="assistant").content
    assert reply_clean("".join(deltas)) == stored == "The keeper climbs the stairs at dusk."
    assert_nothing_left(user, session)


def test_every_event_of_a_two_agent_turn_in_order(live_server, token, user, session, fake_llm):
    events = stream_turn(live_server, token, session, "@writer @critic go")
    names = [n for n, _ in events if n != "agent.delta"]
    assert names == [
        "turn.started",
        "agent.started",
        "agent.completed",
        "agent.started",
        "agent.completed",
        "turn.completed",
    ]
    started = events[0][1]
    assert started["mode"] == "manual" and started["agent_keys"] == ["writer", "critic"]
    completed = events[-1][1]
    for key in ("writer", "critic"):
        text = "".join(d["text"] for n, d in events if n == "agent.delta" and d["agent_key"] == key)
        assert reply_clean(text) == Message.objects.get(turn_id=completed["id"], agent_key=key).content
    usage = [d for n, d in events if n == "agent.completed"]
    assert [u["usage"]["input_tokens"] for u in usage] == list(
        LlmCallEvent.objects.filter(turn_id=completed["id"])
        .order_by("created_at")
        .values_list("input_tokens", flat=True)
    )


def test_streamed_usage_equals_a_plain_turns_for_the_same_provider_figures(
    live_server, token, turn_post, user, session, fake_llm
):
    figures = {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366, "cost": 0.000123}
    fake_llm.enqueue(Step(model=WRITER, reply="Same words.", usage=figures))
    plain = turn_post("@writer once").json()
    fake_llm.enqueue(Step(model=WRITER, reply="Same words.", usage=figures))
    streamed = dict(stream_turn(live_server, token, session, "@writer twice"))["turn.completed"]

    fields = (
        "input_tokens",
        "output_tokens",
        "tokens_estimated",
        "cost_usd",
        "credits_burned",
        "provider_cost_usd",
    )
    one, two = (
        LlmCallEvent.objects.filter(turn_id=body["id"]).values(*fields).get() for body in (plain, streamed)
    )
    assert one == two and one["provider_cost_usd"] == Decimal("0.000123")
    assert streamed["usage"] == plain["usage"]


@pytest.mark.parametrize(
    ("step", "code", "estimated"),
    [
        (Step(model=WRITER, reply="one two three four five", cut_after=2), "provider_stream_cut", True),
        (Step(model=WRITER, reply="one two three four five", error_after=2), "provider_error_in_body", True),
    ],
    ids=["cut", "error-mid-stream"],
)
def test_a_stream_that_fails_midway_is_recorded_with_its_tokens(
    live_server, token, user, session, fake_llm, step, code, estimated
):
    fake_llm.enqueue(step, Step(model=CRITIC, reply="Still here."))
    events = stream_turn(live_server, token, session, "@writer @critic go")
    assert ("agent.failed", {"agent_key": "writer", "code": code}) in events
    completed = dict(events)["turn.completed"]
    assert completed["status"] == "partial" and completed["responding_agent_keys"] == ["critic"]
    failed = LlmCallEvent.objects.get(turn_id=completed["id"], agent_key="writer")
    assert failed.status == "failed" and failed.error_code == code
    assert failed.output_tokens > 0 and failed.tokens_estimated is estimated and not failed.billable
    assert_nothing_left(user, session)


def test_a_stream_without_usage_is_counted_and_flagged_estimated(live_server, token, user, session, fake_llm):
    fake_llm.enqueue(Step(model=WRITER, reply="No figures from me.", no_usage=True))
    completed = dict(stream_turn(live_server, token, session, "@writer go"))["turn.completed"]
    event = LlmCallEvent.objects.get(turn_id=completed["id"])
    assert event.tokens_estimated and event.input_tokens > 0 and event.output_tokens > 0
    assert event.credits_burned > 0  # never lost, never $0
    assert_nothing_left(user, session)


def test_a_client_that_leaves_gets_its_agent_finished_and_the_turn_committed_partial(
    live_server, token, user, session, fake_llm
):
    step = Step(model=WRITER, reply="A long answer that the client will not see end.", gate_after=1)
    fake_llm.enqueue(step)
    stream = EventStream(live_server, token, session, {"user_input": "@writer @critic go", "stream": True})
    events = stream.events()
    while next(events)[0] != "agent.delta":
        pass
    stream.close()  # the client leaves mid-answer
    step.release()

    wait_for(lambda: Turn.objects.filter(session=session).exists())
    turn = Turn.objects.get(session=session)
    assert turn.status == "partial"
    assert {"agent_key": "critic", "code": "client_disconnected"} in turn.agent_errors
    reply = Message.objects.get(turn=turn, role="assistant")
    assert reply.content == "A long answer that the client will not see end."  # read to its end
    assert [r.model for r in fake_llm.requests] == [WRITER]  # no further agent called
    event = LlmCallEvent.objects.get(turn_id=turn.pk)
    assert event.billable and event.credits_burned > 0 and not event.tokens_estimated
    wait_for(lambda: ChatSession.objects.get(pk=session.pk).claim_token is None)
    assert_nothing_left(user, session)


def test_a_refusal_before_the_first_call_stays_json(live_server, token, user, session, fake_llm):
    balance_set(user, 0)
    CreditLedgerEntry.objects.create(user=user, kind="adjustment", amount=-1000, balance_after=0)
    stream = EventStream(live_server, token, session, {"user_input": "@writer go", "stream": True})
    assert stream.response.status == 402
    assert stream.response.getheader("Content-Type") == "application/json"
    assert json.loads(stream.response.read())["code"] == "insufficient_credits"
    stream = EventStream(live_server, token, session, {"user_input": "nobody tagged", "stream": True})
    assert stream.response.status == 422
    assert fake_llm.requests == []


def test_a_replayed_streamed_turn_answers_its_final_events(live_server, token, user, session, fake_llm):
    headers = {"Idempotency-Key": "stream-1"}
    first = dict(stream_turn(live_server, token, session, "@writer go", headers=headers))["turn.completed"]
    calls = len(fake_llm.requests)
    again = stream_turn(live_server, token, session, "@writer go", headers=headers)
    assert [n for n, _ in again] == ["turn.started", "turn.completed"]
    replay = again[-1][1]
    assert replay["id"] == first["id"] and replay["replayed"] is True
    assert len(fake_llm.requests) == calls


def test_a_streamed_turn_whose_every_call_fails_ends_with_an_error_event(
    live_server, token, user, session, fake_llm
):
    fake_llm.enqueue(Step(model=WRITER, status=503))
    events = stream_turn(live_server, token, session, "@writer go")
    name, error = events[-1]
    assert name == "error" and error["code"] == "llm_unavailable" and error["turn_id"]
    assert Turn.objects.get(pk=error["turn_id"]).status == "failed"
    assert_nothing_left(user, session)
