"""Reconciliation against the provider's generation records (the fake server keeps them)."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestration.testing.fake_server import Step
from usage.models import LlmCallEvent, UsageDailyRollup
from usage.services.reconciliation import cost_drifts, usage_reconcile
from usage.tests.factories import LlmCallEventFactory, UsageDailyRollupFactory

pytestmark = pytest.mark.django_db


def test_matching_costs_are_matched_and_rollups_built(turn_post, session, user, fake_llm):
    # The fake server prices like the deepseek entry of the catalog (the writer's): its costs match ours.
    assert turn_post("@writer one").status_code == 201
    assert turn_post("@writer two").status_code == 201
    report = usage_reconcile()
    assert (report.checked, report.matched, report.drift) == (2, 2, 0)
    events = LlmCallEvent.objects.filter(session_id=session.pk)
    assert all(e.reconciliation == "matched" and e.provider_final_cost_usd == e.cost_usd for e in events)
    rollup = UsageDailyRollup.objects.get(user=user, model_alias="deepseek")
    assert rollup.events == 2 and rollup.cost_usd == sum(e.cost_usd for e in events)
    assert rollup.input_tokens == sum(e.input_tokens for e in events)
    again = usage_reconcile()
    assert again.checked == 0 and UsageDailyRollup.objects.count() == 1  # settled events are not asked twice


def test_drift_is_flagged(turn_post, session, fake_llm):
    # qwen (the researcher's) is cheaper in our price list than what the fake provider charges: drift.
    assert turn_post("@researcher look").status_code == 201
    report = usage_reconcile()
    event = LlmCallEvent.objects.get(session_id=session.pk)
    assert report.drift == 1 and event.reconciliation == "drift"
    assert event.provider_final_cost_usd > event.cost_usd
    with pytest.raises(CommandError):
        LlmCallEvent.objects.filter(pk=event.pk).update(reconciliation="pending")
        call_command("reconcile_usage", "--fail-on-drift", stdout=StringIO())


def test_missing_provider_cost_is_filled_in(turn_post, session, fake_llm):
    fake_llm.enqueue(Step(reply="no usage here", no_usage=True))
    assert turn_post("@writer quiet").status_code == 201
    event = LlmCallEvent.objects.get(session_id=session.pk)
    assert event.provider_cost_usd is None and event.tokens_estimated
    usage_reconcile()
    event.refresh_from_db()
    assert event.provider_cost_usd is not None and event.provider_cost_usd == event.provider_final_cost_usd


def test_generation_unknown_to_the_provider_is_missing(user, fake_llm):
    LlmCallEventFactory(user=user, provider_generation_id="gen-never-served")
    assert usage_reconcile().missing == 1
    assert LlmCallEvent.objects.get().reconciliation == "missing"


def test_offline_and_failed_calls_are_not_applicable(user, turn_post, settings):
    settings.LLM_PROVIDER = "offline"
    assert turn_post("@writer offline").status_code == 201
    LlmCallEventFactory(user=user, failed=True, error_code="provider_timeout")
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
    LlmCallEventFactory(user=user, provider_generation_id="gen-1")
    report = usage_reconcile()
    assert report.unavailable == 1 and LlmCallEvent.objects.get().reconciliation == "pending"


def test_rollups_are_rebuilt_from_the_events_not_added_to(user):
    LlmCallEventFactory(user=user, provider_generation_id="")  # nothing to ask the provider: still counted
    UsageDailyRollupFactory(user=user, model_alias="deepseek", events=99, cost_usd=Decimal("9"))  # stale
    UsageDailyRollupFactory(user=user, model_alias="qwen")  # no qwen call that day any more
    usage_reconcile()
    rollup = UsageDailyRollup.objects.get(user=user)
    assert (rollup.model_alias, rollup.events, rollup.cost_usd) == ("deepseek", 1, Decimal("0.000725"))


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


def test_cache_and_reasoning_parts_are_priced_and_reconciled_per_part(turn_post, session, fake_llm):
    # The provider reports a cached prefix and reasoning; its record of the generation agrees on
    # every part but the reasoning (it counted 5 more): the detail says which part differs.
    fake_llm.enqueue(Step(reply="cached answer", cached_tokens=4, reasoning_tokens=2))
    assert turn_post("@writer please").status_code == 201
    event = LlmCallEvent.objects.get(session_id=session.pk)
    assert (event.cached_input_tokens, event.cache_write_tokens, event.reasoning_tokens) == (4, 0, 2)
    generation = fake_llm.state.generations[event.provider_generation_id]
    generation["native_tokens_reasoning"] = 7
    usage_reconcile()
    event.refresh_from_db()
    assert event.reconciliation_detail == {"reasoning": [2, 7]}
    assert event.reconciliation == "matched"  # the cost agrees: deepseek's parts are priced as in/out
