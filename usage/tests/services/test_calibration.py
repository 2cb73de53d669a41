"""Token calibration: learned by reconciliation from the provider's native input counts (the fake
server keeps its generation records), smoothed, bounded, each call learned from once."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from usage.calibration import (
    calibration_ratio_effective,
    calibration_ratio_of,
    tokens_calibrated,
    tokens_within_calibrated,
)
from usage.models import LlmCallEvent, LlmModel, TokenCalibration, UsageDailyRollup
from usage.selectors import priced_models_get
from usage.services.reconciliation import usage_reconcile
from usage.tests.factories import LlmCallEventFactory

pytestmark = pytest.mark.django_db


def provider_counted(fake_llm, event: LlmCallEvent, native_prompt: int) -> None:
    """The provider's record of ``event``'s generation, its input counted ``native_prompt``."""
    fake_llm.state.generations[event.provider_generation_id] = {  # as the fake server records its own
        "id": event.provider_generation_id,
        "model": event.provider_model,
        "total_cost": float(event.cost_usd),
        "native_tokens_prompt": native_prompt,
        "native_tokens_completion": event.output_tokens,
        "native_tokens_cached": 0,
        "native_tokens_reasoning": 0,
    }


def test_a_models_ratio_is_learned_from_the_providers_native_count(turn_post, session, fake_llm):
    assert turn_post("@writer tell me about tokenizers").status_code == 201
    event = LlmCallEvent.objects.get(session_id=session.pk)
    # The context the writer was sent, counted before the call (the fake provider counts the same way).
    assert event.local_input_tokens == event.input_tokens > 20
    native = event.local_input_tokens * 13 // 10  # a provider whose tokenizer counts ~1.3 times more
    fake_llm.state.generations[event.provider_generation_id]["native_tokens_prompt"] = native

    report = usage_reconcile()

    assert report.calibrated == 1
    calibration = TokenCalibration.objects.get(model__alias="deepseek")
    expected = calibration_ratio_of(provider=native, local=event.local_input_tokens)
    assert Decimal("1.25") < expected <= Decimal("1.3")
    assert (calibration.ratio, calibration.last_ratio, calibration.samples) == (expected, expected, 1)
    assert (calibration.provider_input_tokens, calibration.local_input_tokens) == (
        native,
        event.local_input_tokens,
    )
    event.refresh_from_db()  # the event's own counts are kept as they were
    assert (event.input_tokens, event.local_input_tokens) == (event.local_input_tokens, event.input_tokens)
    assert event.reconciliation_detail == {"input": [event.input_tokens, native]}


def test_the_ratio_is_smoothed_over_calls_in_order(user, fake_llm, settings):
    settings.TOKEN_CALIBRATION_SMOOTHING = Decimal("0.5")
    for native in (1200, 1200, 2000):  # each for 1,000 local tokens: ×1.2, ×1.2, ×2.0
        provider_counted(fake_llm, LlmCallEventFactory(user=user, local_input_tokens=1000), native)
    assert usage_reconcile().calibrated == 3
    calibration = TokenCalibration.objects.get(model__alias="deepseek")
    # 1.2 (the first sets it), then 1.2 + 0.5 × (1.2 − 1.2), then 1.2 + 0.5 × (2.0 − 1.2)
    assert calibration.ratio == Decimal("1.6")
    assert calibration.last_ratio == Decimal("2.0")
    assert (calibration.samples, calibration.provider_input_tokens, calibration.local_input_tokens) == (
        3,
        4400,
        3000,
    )


def test_an_odd_record_moves_the_ratio_no_further_than_the_bounds(user, fake_llm, settings):
    settings.TOKEN_CALIBRATION_SMOOTHING = Decimal("0.1")
    settings.TOKEN_CALIBRATION_MIN, settings.TOKEN_CALIBRATION_MAX = Decimal("0.5"), Decimal("2.0")
    provider_counted(fake_llm, LlmCallEventFactory(user=user, local_input_tokens=1000), 1100)
    provider_counted(fake_llm, LlmCallEventFactory(user=user, local_input_tokens=10), 100_000)  # ×10,000
    usage_reconcile()
    calibration = TokenCalibration.objects.get(model__alias="deepseek")
    assert calibration.ratio == Decimal("1.19")  # 1.1 + 0.1 × (2.0 − 1.1): the odd call counted as ×2.0
    assert calibration.last_ratio == Decimal("9999.999999")  # its own ratio, as far as the column holds
    assert calibration.provider_input_tokens == 101_100  # the raw counts, whole


def test_calls_without_both_counts_teach_nothing(user, fake_llm):
    provider_counted(fake_llm, LlmCallEventFactory(user=user, local_input_tokens=None), 1300)  # older event
    provider_counted(fake_llm, LlmCallEventFactory(user=user, local_input_tokens=1000), 0)
    LlmCallEventFactory(user=user, local_input_tokens=1000, provider_generation_id="gen-unknown")
    report = usage_reconcile()
    assert (report.checked, report.calibrated) == (3, 0)
    assert not TokenCalibration.objects.exists()


def test_a_call_is_learned_from_once_however_often_reconciliation_runs(user, fake_llm):
    provider_counted(fake_llm, LlmCallEventFactory(user=user, local_input_tokens=1000), 1500)
    usage_reconcile()
    LlmCallEventFactory(user=user, local_input_tokens=1000, provider_generation_id="")  # nothing to ask
    assert usage_reconcile().calibrated == 0
    assert TokenCalibration.objects.get(model__alias="deepseek").samples == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_reconciliations_at_once_learn_from_each_call_once_and_both_finish(user, fake_llm):
    events = [LlmCallEventFactory(user=user, local_input_tokens=1000) for _ in range(30)]
    for event in events:
        provider_counted(fake_llm, event, 1250)
    start = threading.Barrier(2)
    learned: list[int] = []

    def run() -> None:
        try:
            start.wait()
            learned.append(usage_reconcile().calibrated)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(learned) == 30
    assert UsageDailyRollup.objects.get(user=user).events == 30  # both rebuilt the day, one after the other
    calibration = TokenCalibration.objects.get(model__alias="deepseek")
    assert (calibration.samples, calibration.local_input_tokens, calibration.ratio) == (
        30,
        30_000,
        Decimal("1.25"),
    )


def test_the_ratio_in_effect_waits_for_enough_calls_and_stays_within_the_bounds(settings):
    settings.TOKEN_CALIBRATION_MIN_SAMPLES = 20
    settings.TOKEN_CALIBRATION_MIN, settings.TOKEN_CALIBRATION_MAX = Decimal("0.5"), Decimal("2.0")
    assert calibration_ratio_effective(ratio=None, samples=0) == 1
    assert calibration_ratio_effective(ratio=Decimal("1.4"), samples=19) == 1
    assert calibration_ratio_effective(ratio=Decimal("1.4"), samples=20) == Decimal("1.4")
    assert calibration_ratio_effective(ratio="3.5", samples=500) == Decimal("2.0")
    assert calibration_ratio_effective(ratio="0.2", samples=500) == Decimal("0.5")


def test_the_catalog_read_carries_the_ratio_in_effect(settings):
    settings.TOKEN_CALIBRATION_MIN_SAMPLES = 20
    TokenCalibration.objects.create(model=LlmModel.objects.get(alias="deepseek"), ratio="1.3", samples=20)
    TokenCalibration.objects.create(model=LlmModel.objects.get(alias="qwen"), ratio="1.3", samples=19)
    priced = priced_models_get(aliases={"deepseek", "qwen", "gpt-4o-mini"})
    assert {alias: m.token_ratio for alias, m in priced.items()} == {
        "deepseek": Decimal("1.3"),
        "qwen": 1,
        "gpt-4o-mini": 1,
    }
    assert priced["deepseek"].input_calibrated(1000) == 1300 and priced["deepseek"].input_calibrated(7) == 10


@given(
    budget=st.integers(min_value=0, max_value=2_000_000),
    local=st.integers(min_value=0, max_value=4_000_000),
    ratio=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("2"), places=6),
)
def test_a_local_count_fits_the_budget_exactly_when_its_calibrated_count_does(budget, local, ratio):
    """Budgets divide (rounded down) where holds multiply (rounded up): the two never disagree."""
    fits_calibrated = tokens_calibrated(local, ratio) <= budget
    assert fits_calibrated == (local <= tokens_within_calibrated(budget, ratio))
