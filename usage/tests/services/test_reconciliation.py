"""Reconciliation against the provider's generation records (the fake server keeps them)."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestration.testing.fake_server import Step
from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.tests.factories import SessionFactory
from usage.models import LlmCallEvent, UsageDailyRollup
from usage.services.reconciliation import cost_drifts, usage_reconcile

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(user):
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", model_alias="deepseek", position=0)
    AgentFactory(room=room, agent_key="critic", model_alias="qwen", position=1)
    return SessionFactory(room=room)


def post(client, session, text):
    return client.post(
        f"/api/v1/sessions/{session.pk}/turns", {"user_input": text, "mode": "manual"}, format="json"
    )


def test_matching_costs_are_matched_and_rollups_built(api_client, session, user, fake_llm):
    # The fake server prices like the deepseek entry of the catalog: its costs match ours.
    assert post(api_client, session, "@writer one").status_code == 201
    assert post(api_client, session, "@writer two").status_code == 201
    report = usage_reconcile()
    assert (report.checked, report.matched, report.drift) == (2, 2, 0)
    events = LlmCallEvent.objects.filter(session_id=session.pk)
    assert all(e.reconciliation == "matched" and e.provider_final_cost_usd == e.cost_usd for e in events)
    rollup = UsageDailyRollup.objects.get(user=user, model_alias="deepseek")
    assert rollup.events == 2 and rollup.cost_usd == sum(e.cost_usd for e in events)
    assert rollup.input_tokens == sum(e.input_tokens for e in events)
    again = usage_reconcile()
    assert again.checked == 0 and UsageDailyRollup.objects.count() == 1  # settled events are not asked twice


def test_drift_is_flagged(api_client, session, fake_llm):
    # qwen is cheaper in our price list than what the fake provider charges: drift.
    post(api_client, session, "@critic look")
    report = usage_reconcile()
    event = LlmCallEvent.objects.get(session_id=session.pk)
    assert report.drift == 1 and event.reconciliation == "drift"
    assert event.provider_final_cost_usd > event.cost_usd
    with pytest.raises(CommandError):
        LlmCallEvent.objects.filter(pk=event.pk).update(reconciliation="pending")
        call_command("reconcile_usage", "--fail-on-drift", stdout=StringIO())


def test_missing_provider_cost_is_filled_in(api_client, session, fake_llm):
    fake_llm.enqueue(Step(reply="no usage here", no_usage=True))
    post(api_client, session, "@writer quiet")
    event = LlmCallEvent.objects.get(session_id=session.pk)
    assert event.provider_cost_usd is None and event.tokens_estimated
    usage_reconcile()
    event.refresh_from_db()
    assert event.provider_cost_usd is not None and event.provider_cost_usd == event.provider_final_cost_usd


def test_generation_unknown_to_the_provider_is_missing(user, fake_llm):
    LlmCallEvent.objects.create(
        user=user,
        purpose="agent_reply",
        model_alias="deepseek",
        provider_model="x",
        provider_generation_id="gen-never-served",
        cost_usd=Decimal("0.01"),
    )
    assert usage_reconcile().missing == 1
    assert LlmCallEvent.objects.get().reconciliation == "missing"


def test_offline_and_failed_calls_are_not_applicable(user, api_client, session, settings):
    settings.LLM_PROVIDER = "offline"
    post(api_client, session, "@writer offline")
    LlmCallEvent.objects.create(
        user=user,
        purpose="agent_reply",
        model_alias="deepseek",
        provider_model="x",
        status="failed",
        error_code="provider_timeout",
    )
    report = usage_reconcile()
    assert report.not_applicable == 2 and report.checked == 0
    assert set(LlmCallEvent.objects.values_list("reconciliation", flat=True)) == {"not_applicable"}


def test_unreachable_provider_leaves_events_pending(user, settings):
    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY = (
        "openai",
        "http://127.0.0.1:9/v1",
        "k",
    )
    settings.LLM_TIMEOUT_SECONDS = 0.5
    LlmCallEvent.objects.create(
        user=user,
        purpose="agent_reply",
        model_alias="deepseek",
        provider_model="x",
        provider_generation_id="gen-1",
        cost_usd=Decimal("0.01"),
    )
    report = usage_reconcile()
    assert report.unavailable == 1 and LlmCallEvent.objects.get().reconciliation == "pending"


@pytest.mark.parametrize(
    ("ours", "theirs", "drifts"),
    [
        ("0.001", "0.001", False),
        ("0.001", "0.00104", False),
        ("0.001", "0.0012", True),
        ("0.0000001", "0.0000009", False),
        ("0", "0.5", True),
    ],
)
def test_drift_tolerance(ours, theirs, drifts):
    assert cost_drifts(ours=Decimal(ours), theirs=Decimal(theirs)) is drifts
