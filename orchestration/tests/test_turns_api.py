"""Turns through the HTTP API on the offline provider: modes, errors, idempotency, credits, usage."""

from decimal import Decimal

import pytest

from rooms.tests.factories import RoomFactory
from sessions_app.models import Message, Turn, TurnContextAudit
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditAccount, CreditLedgerEntry, LlmCallEvent
from usage.tests.factories import balance_set

pytestmark = pytest.mark.django_db


def test_manual_mode_dispatches_tags_in_order_each_once(turn_post):
    response = turn_post("@critic then @writer, and @critic again, @nobody")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["turn_index"] == 1 and body["status"] == "completed"
    assert body["responding_agent_keys"] == ["critic", "writer"]
    assert [(m["role"], m["agent_key"]) for m in body["messages"]] == [
        ("user", ""),
        ("assistant", "critic"),
        ("assistant", "writer"),
    ]
    assert body["assistant_output"].startswith("Critic: ")
    assert "\n\nWriter: " in body["assistant_output"]
    assert "llm;dur=" in response["Server-Timing"] and "app;dur=" in response["Server-Timing"]


def test_roundtable_answers_every_agent_by_position(room, turn_post):
    room.agents.filter(agent_key="writer").update(position=5)
    response = turn_post("Thoughts on the ending?", mode="roundtable")
    assert response.status_code == 201
    assert response.json()["responding_agent_keys"] == ["researcher", "critic", "writer"]


def test_orchestrator_mode_routes_through_the_manager_unbilled(user, turn_post):
    response = turn_post("I need @researcher on this", mode="orchestrator")
    assert response.status_code == 201, response.content
    assert response.json()["responding_agent_keys"] == ["researcher"]
    routing = LlmCallEvent.objects.get(purpose="routing", turn_id=response.json()["id"])
    assert routing.billable is False and routing.credits_burned == 0 and routing.cost_usd > 0


def test_manual_without_valid_tag_is_422_with_agent_keys(turn_post):
    response = turn_post("hello @nobody")
    assert response.status_code == 422
    assert response.json()["code"] == "no_agent_selected"
    assert response.json()["agent_keys"] == ["writer", "researcher", "critic"]
    assert Turn.objects.count() == 0 and LlmCallEvent.objects.count() == 0


def test_room_without_agents_is_422(user, turn_post):
    session = SessionFactory(room=RoomFactory(owner=user))
    response = turn_post("hello", mode="roundtable", session=session)
    assert response.status_code == 422
    assert response.json() == {
        "detail": response.json()["detail"],
        "code": "no_agent_selected",
        "agent_keys": [],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_input": "", "mode": "manual"}, "user_input"),
        ({"user_input": "   ", "mode": "manual"}, "user_input"),
        ({"user_input": "@writer hi", "mode": "freestyle"}, "mode"),
        ({"mode": "manual"}, "user_input"),
        ({"user_input": ["@writer"], "mode": "manual"}, "user_input"),
    ],
)
def test_bad_turn_bodies_are_400_with_fields(api_client, session, body, field):
    response = api_client.post(f"/api/v1/sessions/{session.pk}/turns", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert Turn.objects.count() == 0


def test_malformed_json_is_400(api_client, session):
    response = api_client.generic(
        "POST", f"/api/v1/sessions/{session.pk}/turns", "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_turn_writes_messages_audits_usage_and_debit_together(user, turn_post):
    before = CreditAccount.objects.get(user=user).balance
    response = turn_post("@writer @researcher draft the opening")
    assert response.status_code == 201
    turn = Turn.objects.get(pk=response.json()["id"])
    events = LlmCallEvent.objects.filter(turn_id=turn.pk)
    assert events.count() == 2 and all(e.billable and e.pricing_version_id for e in events)
    assert Message.objects.filter(turn=turn).count() == 3
    assert TurnContextAudit.objects.filter(turn=turn).count() == 2
    debit = sum(e.credits_burned for e in events)
    assert debit > 0
    assert CreditAccount.objects.get(user=user).balance == before - debit
    entry = CreditLedgerEntry.objects.get(turn_id=turn.pk)
    assert entry.amount == -debit and entry.balance_after == before - debit
    usage = response.json()["usage"]
    assert Decimal(usage["credits_burned"]) == debit and usage["llm_calls"] == 2


def test_second_agent_sees_the_first_agents_reply(turn_post):
    response = turn_post("@writer @critic go")
    audits = TurnContextAudit.objects.filter(turn_id=response.json()["id"]).order_by("id")
    writer, critic = audits
    assert critic.tokens_before > writer.tokens_before  # the writer's reply is in the critic's context


def test_turn_indexes_follow_and_history_lists_in_order(api_client, session, turn_post):
    for i in range(3):
        assert turn_post(f"@writer part {i}").status_code == 201
    listed = api_client.get(f"/api/v1/sessions/{session.pk}/turns").json()["results"]
    assert [t["turn_index"] for t in listed] == [1, 2, 3]
    assert all(t["messages"][0]["role"] == "user" for t in listed)


def test_idempotent_repeat_returns_stored_turn_and_bills_nothing(user, turn_post):
    first = turn_post("@writer once", HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == 201
    balance = CreditAccount.objects.get(user=user).balance
    again = turn_post("@writer once", HTTP_IDEMPOTENCY_KEY="abc-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"] is True
    assert Turn.objects.count() == 1 and LlmCallEvent.objects.count() == 1
    assert CreditAccount.objects.get(user=user).balance == balance


def test_idempotency_key_with_another_body_is_422(turn_post):
    assert turn_post("@writer once", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    response = turn_post("@writer twice", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    assert Turn.objects.count() == 1


def test_insufficient_credits_is_402_before_any_call(user, turn_post):
    balance_set(user, "0.0001")
    response = turn_post("@writer hello")
    assert response.status_code == 402 and response.json()["code"] == "insufficient_credits"
    assert Decimal(response.json()["required_credits"]) > Decimal("0.0001")
    assert Turn.objects.count() == 0 and LlmCallEvent.objects.count() == 0


def test_fifty_thousand_characters_is_422_and_writes_only_the_audit(user, turn_post):
    balance = CreditAccount.objects.get(user=user).balance
    text = "@writer " + " ".join(f"word{i}" for i in range(8000))[:50_000]
    response = turn_post(text)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "context_budget_exceeded"
    assert body["budget_tokens"] == 6144 and body["required_tokens"] > 6144
    assert Turn.objects.count() == 0 and Message.objects.count() == 0 and LlmCallEvent.objects.count() == 0
    audit = TurnContextAudit.objects.get()
    assert audit.rejected and audit.turn_id is None and audit.tokens_after == body["required_tokens"]
    assert CreditAccount.objects.get(user=user).balance == balance


def test_session_usage_lists_events_with_totals(api_client, session, turn_post):
    turn_post("@writer a")
    turn_post("@critic b")
    body = api_client.get(f"/api/v1/sessions/{session.pk}/usage").json()
    assert body["count"] == 2 and body["totals"]["events"] == 2
    events = LlmCallEvent.objects.filter(session_id=session.pk)
    assert Decimal(body["totals"]["cost_usd"]) == sum(e.cost_usd for e in events)
    assert body["totals"]["input_tokens"] == sum(e.input_tokens for e in events)


def test_summaries_endpoint_lists_newest_first(api_client, session):
    from sessions_app.models import SessionSummary

    SessionSummary.objects.create(session=session, covers_through_turn_index=8, summary_text="first")
    SessionSummary.objects.create(session=session, covers_through_turn_index=16, summary_text="second")
    body = api_client.get(f"/api/v1/sessions/{session.pk}/summaries").json()
    assert [s["summary_text"] for s in body["results"]] == ["second", "first"]


def test_unauthenticated_turn_is_401(anon_client, turn_post):
    response = turn_post("@writer hi", client=anon_client)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
