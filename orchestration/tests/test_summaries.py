"""Summaries: two strict-JSON stages with fallbacks, metered, written once per covered index."""

import json

import pytest

from orchestration.selectors import summaries_due
from orchestration.services.summaries import session_summary_generate
from orchestration.tasks import summaries_due_sweep
from orchestration.testing.fake_server import Step
from sessions_app.models import ChatSession, SessionSummary
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditAccount, CreditLedgerEntry, LlmCallEvent

pytestmark = pytest.mark.django_db

EXTRACTED = {
    "key_facts": ["The keeper is Ada."],
    "decisions": ["Set in 1920."],
    "open_questions": ["Who?"],
    "action_items": ["Outline chapter 2."],
}


@pytest.fixture
def three_turns(turn_post, fake_llm):
    """Turns 1 to 3 (``@writer part 1`` …) on ``session``, then the fake server's log emptied."""
    for i in range(1, 4):
        turn_post(f"@writer part {i}")
    fake_llm.reset()


def test_two_stages_write_a_metered_summary(session, three_turns, user, fake_llm):
    fake_llm.enqueue(
        Step(reply=json.dumps({"summary_text": "Ada keeps the light; the story is set in 1920."})),
        Step(reply=json.dumps(EXTRACTED)),
    )
    balance = CreditAccount.objects.get(user=user).balance
    summary = session_summary_generate(session_id=session.pk, through_index=3)

    assert summary.summary_text == "Ada keeps the light; the story is set in 1920."
    assert (summary.key_facts, summary.decisions, summary.open_questions, summary.action_items) == (
        EXTRACTED["key_facts"],
        EXTRACTED["decisions"],
        EXTRACTED["open_questions"],
        EXTRACTED["action_items"],
    )
    assert not summary.summary_used_fallback and not summary.extraction_used_fallback
    stage_one, stage_two = fake_llm.requests
    assert stage_one.body["response_format"] == {"type": "json_object"}
    assert (
        "@writer part 1" in stage_one.messages[-1]["content"]
        and "@writer part 3" in stage_one.messages[-1]["content"]
    )
    assert stage_two.messages[-1]["content"] == summary.summary_text
    events = LlmCallEvent.objects.filter(session_id=session.pk, purpose__in=["summary", "extraction"])
    assert sorted(e.purpose for e in events) == ["extraction", "summary"]
    assert all(e.turn_id is None and e.billable and e.credits_burned > 0 for e in events)
    debit = sum(e.credits_burned for e in events)
    assert CreditAccount.objects.get(user=user).balance == balance - debit
    assert CreditLedgerEntry.objects.get(kind="summary_debit").amount == -debit


def test_rerun_for_the_same_index_creates_nothing_and_calls_nothing(session, three_turns, fake_llm):
    first = session_summary_generate(session_id=session.pk, through_index=3)
    calls = len(fake_llm.requests)
    again = session_summary_generate(session_id=session.pk, through_index=3)
    assert again.pk == first.pk and len(fake_llm.requests) == calls
    assert SessionSummary.objects.filter(session=session).count() == 1


@pytest.mark.parametrize(
    ("stage_one", "stage_two"),
    [
        (Step(reply="not json"), Step(reply="{}")),
        (Step(reply='{"summary_text": ""}'), Step(reply='{"key_facts": "not a list"}')),
        (Step(status=500), Step(status=500)),
    ],
)
def test_bad_answers_fall_back_deterministically(session, three_turns, fake_llm, stage_one, stage_two):
    fake_llm.enqueue(stage_one, stage_two)
    summary = session_summary_generate(session_id=session.pk, through_index=3)
    assert summary.summary_used_fallback is True
    assert "@writer part 3" in summary.summary_text  # the fallback keeps the newest turns
    if stage_two.status == 200 and stage_two.reply == "{}":
        assert summary.extraction_used_fallback is False  # missing keys simply default to empty
        assert summary.key_facts == [] and summary.action_items == []
    else:
        assert summary.extraction_used_fallback is True


def test_missing_extraction_keys_default_to_empty(session, three_turns, fake_llm):
    fake_llm.enqueue(Step(reply='{"summary_text": "Short."}'), Step(reply='{"decisions": ["Go north."]}'))
    summary = session_summary_generate(session_id=session.pk, through_index=3)
    assert (
        summary.decisions == ["Go north."]
        and summary.key_facts == []
        and not summary.extraction_used_fallback
    )


def test_next_summary_builds_on_the_previous_one(session, three_turns, fake_llm):
    fake_llm.enqueue(Step(reply='{"summary_text": "FIRST-SUMMARY"}'), Step(reply="{}"))
    session_summary_generate(session_id=session.pk, through_index=2)
    fake_llm.reset()
    session_summary_generate(session_id=session.pk, through_index=3)
    prompt = fake_llm.requests[0].messages[-1]["content"]
    assert "FIRST-SUMMARY" in prompt and "@writer part 3" in prompt and "@writer part 1" not in prompt


def test_sweep_finds_due_summaries_that_were_never_made(session, three_turns, settings):
    ChatSession.objects.filter(pk=session.pk).update(summary_due_through=3)
    assert summaries_due_sweep() == 1  # eager in tests: the summary is produced right away
    assert SessionSummary.objects.get(session=session).covers_through_turn_index == 3
    assert summaries_due() == []


def test_eighth_turn_enqueues_the_summary_after_commit(
    session, api_client, fake_llm, turn_post, django_capture_on_commit_callbacks
):
    for i in range(1, 8):
        turn_post(f"@writer {i}")
    assert not SessionSummary.objects.exists()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = turn_post("@writer 8")
    assert response.json()["summary_triggered"] is True and len(callbacks) == 1
    summary = SessionSummary.objects.get(session=session)
    assert summary.covers_through_turn_index == 8
    summaries = api_client.get(f"/api/v1/sessions/{session.pk}/summaries").json()["results"]
    assert summaries[0]["covers_through_turn_index"] == 8


def test_enqueue_failure_does_not_fail_the_turn(
    room, fake_llm, turn_post, django_capture_on_commit_callbacks, monkeypatch
):
    from orchestration import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.session_summary_generate, "delay", broker_down)
    session = SessionFactory(room=room, last_turn_index=7)
    with django_capture_on_commit_callbacks(execute=True):
        response = turn_post("@writer 8", session=session)
    assert response.status_code == 201
    assert summaries_due() == [(session.pk, 8)]  # still due: the sweep will make it


def test_a_summary_waits_while_another_of_its_session_is_being_made(session, three_turns, fake_llm):
    from orchestration.errors import SummaryBusy
    from orchestration.summary_claims import summary_claim_release, summary_claim_take
    from orchestration.tasks import session_summary_generate as task

    token = summary_claim_take(session_id=session.pk, hold=None)  # another worker's summary in flight
    with pytest.raises(SummaryBusy):
        session_summary_generate(session_id=session.pk, through_index=3)
    assert task.delay(str(session.pk), 3).get() is None  # eager: left to the sweep, still due
    assert not fake_llm.requests and not SessionSummary.objects.exists()

    summary_claim_release(session_id=session.pk, token=token)
    assert session_summary_generate(session_id=session.pk, through_index=3).covers_through_turn_index == 3
    assert ChatSession.objects.get(pk=session.pk).summary_claim_token is None


def test_a_summary_overtaken_at_its_write_is_not_kept(session, three_turns, fake_llm, monkeypatch):
    """Its claim expired and another run wrote the summary meanwhile: ours is dropped (its calls kept
    as orphaned events), the one written stays the only one."""
    from orchestration.services import summaries

    parse = summaries.extraction_parse

    def overtaken_after_the_calls(*args, **kwargs):
        SessionSummary.objects.create(
            session_id=session.pk, covers_through_turn_index=3, summary_text="theirs"
        )
        return parse(*args, **kwargs)

    monkeypatch.setattr(summaries, "extraction_parse", overtaken_after_the_calls)
    summary = session_summary_generate(session_id=session.pk, through_index=3)

    assert summary.summary_text == "theirs"
    assert SessionSummary.objects.filter(session=session).count() == 1
    events = LlmCallEvent.objects.filter(session_id=session.pk, purpose__in=["summary", "extraction"])
    assert events.count() == 2 and all(e.orphaned for e in events)
