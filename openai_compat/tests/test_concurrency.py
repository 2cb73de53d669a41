"""Chat clients that send twice: an SDK retry with the same Idempotency-Key, a double submit, two
tabs continuing one conversation; and a client that stopped a reply and kept part of it. The real
``openai`` SDK against a live server, concurrent requests on real threads, PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from django.core.cache import cache

from openai_compat.fingerprint import EMPTY, turn_fingerprint
from openai_compat.models import IdempotencyKey, KeptReply
from openai_compat.tests.test_sdk import WRITER, model, say, wait_for
from orchestration.testing.fake_server import Step
from sessions_app.models import ChatSession, Turn
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditLedgerEntry, LlmCallEvent
from usage.services.tokens import api_token_issue

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.room(("writer", "deepseek"), ("critic", "qwen")),
]


def in_flight(user) -> int:
    return cache.get(f"turns-in-flight:{user.pk}") or 0


def charges(user) -> int:
    return CreditLedgerEntry.objects.filter(user=user).exclude(kind__in=["grant", "adjustment"]).count()


def streamed(client, room, history, text, **options) -> dict:
    stream = client.chat.completions.create(
        model=model(room), messages=[*history, {"role": "user", "content": text}], stream=True, **options
    )
    chunks = list(stream)
    ending = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    return {
        **ending.pantheon,
        "content": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
    }


def plain(client, room, history, text, **options) -> dict:
    completion, _ = say(client, room, history, text, **options)
    return {**completion.pantheon, "content": completion.choices[0].message.content}


# --- row 6: one Idempotency-Key, one turn ----------------------------------------------------------


@pytest.mark.parametrize("how", ["plain", "streamed", "named session"])
def test_an_idempotency_key_retried_while_the_first_runs_is_one_session_one_turn_one_charge(
    client, user, room, fake_llm, how
):
    """The SDK's retry after a client-side timeout: the same request, the same key, twice more,
    while the first still runs — no session named (or one named, for the third case)."""
    headers = {"Idempotency-Key": f"retry-{how}"}
    options = {"extra_headers": headers}
    if how == "named session":
        headers["X-Pantheon-Session"] = str(SessionFactory(room=room).pk)
    send = streamed if how == "streamed" else plain
    gate = Step(model=WRITER, reply="Slow words arrive at last.", gate_after=1)
    slow = Step(model=WRITER, reply="Slow words arrive at last.", delay=1.5)
    fake_llm.enqueue(gate if how == "streamed" else slow)
    ledger_before = charges(user)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(send, client, room, [], "@writer once only", **options)
        wait_for(lambda: len(fake_llm.requests) == 1)  # the first turn is inside its call
        twins = [pool.submit(send, client, room, [], "@writer once only", **options) for _ in range(2)]
        wait_for(lambda: in_flight(user) == 3)  # both twins found the key's session and wait on it
        gate.release()
        results = [first.result(), *(t.result() for t in twins)]

    assert len({r["turn_id"] for r in results}) == 1
    assert len({r["session_id"] for r in results}) == 1
    assert sorted(r["replayed"] for r in results) == [False, True, True]
    assert len({r["content"] for r in results}) == 1
    assert Turn.objects.filter(session__room=room).count() == 1
    assert ChatSession.objects.live().filter(room=room).count() == 1  # (the named one, if named)
    assert len(fake_llm.requests) == 1
    assert LlmCallEvent.objects.count() == 1
    assert charges(user) == ledger_before + 1
    assert IdempotencyKey.objects.get(user=user, key=headers["Idempotency-Key"]).session_id is not None


def test_twins_sent_at_the_same_instant_with_one_key_make_one_turn(client, user, room, fake_llm):
    """No head start: four requests released together race for the key row itself."""
    barrier = threading.Barrier(4)

    def go():
        barrier.wait()
        return plain(client, room, [], "@writer together", extra_headers={"Idempotency-Key": "race-1"})

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [f.result() for f in [pool.submit(go) for _ in range(4)]]
    assert len({r["turn_id"] for r in results}) == 1
    assert [r["replayed"] for r in results].count(False) == 1
    assert ChatSession.objects.live().filter(room=room).count() == 1
    assert LlmCallEvent.objects.count() == 1


def test_a_key_reused_for_another_message_is_422_and_runs_nothing(client, user, room, fake_llm):
    headers = {"Idempotency-Key": "used-once"}
    plain(client, room, [], "@writer first", extra_headers=headers)
    calls = len(fake_llm.requests)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        plain(client, room, [], "@writer something else", extra_headers=headers)
    assert caught.value.code == "idempotency_key_reused"
    assert len(fake_llm.requests) == calls and Turn.objects.count() == 1
    assert ChatSession.objects.live().filter(room=room).count() == 1


def test_a_key_is_the_users_own(client, user, other_user, room, live_server, fake_llm):
    """Another user's key of the same name is another key."""
    from openai import OpenAI

    from rooms.tests.factories import AgentFactory, RoomFactory

    theirs = RoomFactory(owner=other_user)
    AgentFactory(room=theirs, agent_key="writer", model_alias="deepseek")
    other = OpenAI(base_url=client.base_url, api_key=api_token_issue(user=other_user)[1])
    mine = plain(client, room, [], "@writer hi", extra_headers={"Idempotency-Key": "k"})
    completion = other.chat.completions.create(
        model=model(theirs, ":roundtable"),
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"Idempotency-Key": "k"},
    )
    assert (
        completion.pantheon["replayed"] is False and completion.pantheon["session_id"] != mine["session_id"]
    )


# --- row 2: concurrent continuations of one head never stack ---------------------------------------


def test_three_continuations_of_one_head_at_once_fork_instead_of_stacking(client, user, room, fake_llm):
    """A double submit, two tabs, a retry without a key: each sent ``[u1, a1, next i]``. The first
    continues the session; the others, finding its head moved once they hold the claim, fork at
    ``a1``: every turn answers with only its own conversation as context."""
    _, history = say(client, room, [], "@writer one")
    original = ChatSession.objects.get(room=room)
    gate = Step(model=WRITER, reply="The first continuation.", gate_after=1)
    fake_llm.enqueue(gate)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(streamed, client, room, history, "@writer next 1")
        assert gate.held.wait(10)
        others = [pool.submit(plain, client, room, history, f"@writer next {i}") for i in (2, 3)]
        wait_for(lambda: in_flight(user) == 3)
        gate.release()
        results = [first.result(), *(o.result() for o in others)]

    sessions = [r["session_id"] for r in results]
    assert len(set(sessions)) == 3 and str(original.pk) in sessions
    for position, result in enumerate(results, start=1):
        turns = list(Turn.objects.filter(session_id=result["session_id"]).order_by("turn_index"))
        assert [t.user_input for t in turns] == ["@writer one", f"@writer next {position}"]
        assert result["turn_index"] == 2
        head = EMPTY
        for turn in turns:
            head = turn_fingerprint(head, user_input=turn.user_input, reply=turn.assistant_output)
        assert ChatSession.objects.get(pk=result["session_id"]).transcript_fingerprint == head
    for request in fake_llm.requests:  # no call saw another continuation
        seen = " ".join(str(m.get("content")) for m in request.messages)
        assert sum(f"next {i}" in seen for i in (1, 2, 3)) <= 1

    # Each client's next message finds its own session, with its context.
    for position, result in enumerate(results, start=1):
        mine = [*history, {"role": "user", "content": f"@writer next {position}"}]
        mine.append({"role": "assistant", "content": result["content"]})
        following = plain(client, room, mine, "@writer and then?")
        assert following["session_id"] == result["session_id"] and following["turn_index"] == 3


def test_a_continuation_after_a_native_turn_forks_not_stacks(client, user, room, turn_post):
    """The head moved through the native API between the lookup and the claim is the same case:
    here it moved before; the lookup already forks (the head check has nothing to add)."""
    first = plain(client, room, [], "@writer one")
    session = ChatSession.objects.get(pk=first["session_id"])
    assert turn_post("@writer native", session=session).status_code == 201
    history = [{"role": "user", "content": "@writer one"}, {"role": "assistant", "content": first["content"]}]
    again = plain(client, room, history, "@writer two")
    assert (
        again["session_id"] != first["session_id"] and again["forked_from_session_id"] == first["session_id"]
    )


# --- row 4: a reply the client kept only part of ---------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_cut_short_by_the_client_continues_its_session_with_what_it_kept(
    client, user, room, fake_llm, stream
):
    """Open WebUI's Stop keeps the words that arrived as the assistant message and goes on."""
    fake_llm.enqueue(Step(model=WRITER, reply="Once upon a time there was a lighthouse keeper named Ada."))
    send = streamed if stream else plain
    first = send(client, room, [], "@writer a tale")
    full = first["content"]
    kept = full[: full.index("there") + len("there")]  # "Writer: Once upon a time there"
    history = [{"role": "user", "content": "@writer a tale"}, {"role": "assistant", "content": kept + " "}]
    calls = len(fake_llm.requests)

    following = send(client, room, history, "@writer go on from there")

    assert following["session_id"] == first["session_id"] and following["turn_index"] == 2
    turn = Turn.objects.get(pk=first["turn_id"])
    record = KeptReply.objects.get(turn=turn)
    assert record.full_output == full and record.kept_chars == len(kept)
    assert turn.assistant_output == kept
    context = " ".join(str(m.get("content")) for m in fake_llm.requests[calls].messages)
    assert "Once upon a time there" in context and "lighthouse keeper" not in context

    # The conversation goes on from what the client holds.
    history += [
        {"role": "user", "content": "@writer go on from there"},
        {"role": "assistant", "content": following["content"]},
    ]
    assert plain(client, room, history, "@writer the end")["session_id"] == first["session_id"]


def test_a_reply_cut_short_after_the_session_moved_on_forks_at_it(client, user, room, fake_llm):
    first = plain(client, room, [], "@writer a tale")
    history = [
        {"role": "user", "content": "@writer a tale"},
        {"role": "assistant", "content": first["content"]},
    ]
    plain(client, room, history, "@writer more")  # another tab went on
    cut = [history[0], {"role": "assistant", "content": first["content"][:12]}]
    forked = plain(client, room, cut, "@writer differently")
    assert forked["forked_from_session_id"] == first["session_id"] and forked["turn_index"] == 2
    assert Turn.objects.get(pk=first["turn_id"]).assistant_output == first["content"]  # untouched
    copy = Turn.objects.get(session_id=forked["session_id"], turn_index=1)
    assert copy.assistant_output == first["content"][:12].strip()
    assert KeptReply.objects.get(turn=copy).full_output == first["content"]
