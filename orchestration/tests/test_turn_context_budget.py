"""The context budget on real sessions in the database, seen from what the provider received."""

import pytest

from orchestration.context import turn_context_tokens
from orchestration.llm.tokens import count_messages_tokens
from orchestration.turns import store
from sessions_app.models import ChatSession, SessionSummary, Turn, TurnContextAudit
from sessions_app.tests.factories import SessionFactory

# The writer alone: the system prompt names the other agents of the room, and the figures below are
# a lone writer's.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.room(("writer", "deepseek")),
]


def add_history(session, count: int, *, start: int = 1, failed: set[int] = frozenset()) -> None:
    turns = []
    for i in range(start, start + count):
        user_input = f"USER-{i}: " + "tell me more about the lighthouse and the storm " * 4
        output = "" if i in failed else f"Writer: REPLY-{i} " + "the keeper climbs the stairs again " * 4
        turns.append(
            Turn(
                session=session,
                turn_index=i,
                mode="manual",
                user_input=user_input,
                assistant_output=output,
                status="failed" if i in failed else "completed",
                context_tokens=turn_context_tokens(user_input=user_input, assistant_output=output),
            )
        )
    Turn.objects.bulk_create(turns)
    ChatSession.objects.filter(pk=session.pk).update(last_turn_index=start + count - 1)


def test_long_session_prunes_oldest_keeping_anchor_and_last_four(session, fake_llm, settings, turn_post):
    add_history(session, 300)
    response = turn_post("@writer continue")
    assert response.status_code == 201, response.content
    assert response.json()["turn_index"] == 301

    sent = fake_llm.requests[-1].messages
    text = "\n".join(m["content"] for m in sent)
    assert "USER-1:" in text  # the anchor survives although turn 1 is long pruned
    for i in (297, 298, 299, 300):
        assert f"USER-{i}:" in text and f"REPLY-{i} " in text
    assert "USER-2:" not in text and "REPLY-1 " not in text
    assert sent[-1] == {"role": "user", "content": "@writer continue"}

    audit = TurnContextAudit.objects.get(turn_id=response.json()["id"])
    assert audit.budget_tokens == 6144
    assert audit.tokens_after == count_messages_tokens(m["content"] for m in sent)  # what was really sent
    assert audit.tokens_after <= audit.budget_tokens * settings.CONTEXT_PRUNE_TRIGGER_RATIO
    assert audit.tokens_before > audit.budget_tokens  # all 300 turns would never have fitted
    kept = sum(1 for i in range(1, 301) if f"REPLY-{i} " in text)
    assert audit.pruned_turn_count == 300 - kept
    assert audit.pruned_through_turn_index == 300 - kept
    assert audit.summary_triggered and not audit.rejected
    assert response.json()["summary_triggered"] is True


def test_tokens_before_counts_every_history_turn(session, fake_llm, turn_post):
    add_history(session, 200)
    response = turn_post("@writer continue")
    audit = TurnContextAudit.objects.get(turn_id=response.json()["id"])
    history_tokens = sum(
        Turn.objects.filter(session=session, turn_index__lte=200).values_list("context_tokens", flat=True)
    )
    sent = fake_llm.requests[-1].messages
    kept_history = sum(
        t.context_tokens
        for t in Turn.objects.filter(session=session, turn_index__lte=200)
        if f"REPLY-{t.turn_index} " in "\n".join(m["content"] for m in sent)
    )
    # before − after = exactly the tokens of the turns that were pruned (the anchor is re-added)
    anchor_message = sent[1]["content"]
    assert (
        audit.tokens_before - audit.tokens_after
        == history_tokens - kept_history - count_messages_tokens([anchor_message]) + 2
    )  # count_messages_tokens adds the 2 reply tokens once


def test_summary_replaces_covered_history(session, fake_llm, turn_post):
    add_history(session, 12)
    SessionSummary.objects.create(
        session=session, covers_through_turn_index=10, summary_text="SUMMARY-OF-TEN"
    )
    response = turn_post("@writer continue")
    sent = fake_llm.requests[-1].messages
    assert sent[1] == {"role": "system", "content": "Summary of the conversation so far:\nSUMMARY-OF-TEN"}
    text = "\n".join(m["content"] for m in sent)
    assert "REPLY-11 " in text and "REPLY-12 " in text and "REPLY-10 " not in text
    assert "USER-1:" in text  # the anchor stays even under a summary
    audit = TurnContextAudit.objects.get(turn_id=response.json()["id"])
    assert audit.summary_used and audit.pruned_turn_count == 0


def test_every_eighth_turn_marks_a_summary_due(session, fake_llm, turn_post):
    for i in range(1, 9):
        body = turn_post(f"@writer part {i}").json()
        assert body["summary_triggered"] is (i == 8), i
    assert ChatSession.objects.get(pk=session.pk).summary_due_through == 8


def test_failed_history_turns_are_not_counted(session, fake_llm, turn_post):
    add_history(session, 5, failed={3})
    turn_post("@writer continue")
    text = "\n".join(m["content"] for m in fake_llm.requests[-1].messages)
    assert "USER-3:" not in text and "USER-4:" in text


def test_queries_per_turn_do_not_grow_with_session_length(api_client, room, fake_llm, turn_post):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}  # api_client asked for above: its token is made before the queries are counted
    for length in (0, 10, 300):
        session = SessionFactory(room=room)
        if length:
            add_history(session, length)
        with CaptureQueriesContext(connection) as queries:
            assert turn_post("@writer go", session=session).status_code == 201
        counts[length] = len(queries), session.turns.get(turn_index=length + 1).summary_triggered
    # The sessions with history also ask for a summary (every 8th turn / 70 %), whose credit hold is
    # one more row of the same commit statement; the length of the history changes nothing.
    assert counts[10] == counts[300] == (counts[0][0], True), counts


def test_the_anchor_is_the_first_turn_that_did_not_fail(session, settings):
    """Turns 1 and 2 failed: the anchor (the session's first question kept in every context) is
    turn 3's, read by the claim's statement as by the cost preview's."""
    add_history(session, 6, failed={1, 2})
    peeked = store.context_peek(session_id=session.pk, max_history_tokens=100_000)
    assert peeked.context.anchor_turn_index == 3
    assert peeked.context.anchor_text.startswith("USER-3: ")
    Turn.objects.filter(session=session).update(status="failed")
    assert (
        store.context_peek(session_id=session.pk, max_history_tokens=100_000).context.anchor_turn_index
        is None
    )
