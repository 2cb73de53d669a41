"""Token calibration on the turn path: a model whose provider counts more tokens than tiktoken gets
larger holds and tighter context budgets, one that counts fewer smaller holds; without a calibration
in effect nothing changes. Seen through the cost preview (the turn's own hold plan), real turns and
their context audits."""

import math
from dataclasses import replace
from decimal import Decimal

import pytest

from orchestration.services.summaries import summary_worst_case
from orchestration.tests.test_turn_context_budget import add_history
from sessions_app.models import TurnContextAudit
from sessions_app.tests.factories import SessionFactory
from usage.models import LlmModel, TokenCalibration
from usage.selectors import priced_models_get
from usage.tests.factories import balance_set

# The writer alone, on deepseek: budget 8192 − 2048 = 6144 tokens.
pytestmark = [pytest.mark.django_db, pytest.mark.room(("writer", "deepseek"))]


def calibrate(alias: str, ratio: str, *, samples: int | None = None) -> None:
    """``alias``'s calibration, learned from enough calls to be in effect unless ``samples`` says."""
    from django.conf import settings

    TokenCalibration.objects.update_or_create(
        model=LlmModel.objects.get(alias=alias),
        defaults={
            "ratio": Decimal(ratio),
            "samples": settings.TOKEN_CALIBRATION_MIN_SAMPLES if samples is None else samples,
        },
    )


def preview(api_client, session, text="@writer tell me about the lighthouse") -> dict:
    response = api_client.post(
        f"/api/v1/sessions/{session.pk}/turns/preview", {"user_input": text, "mode": "manual"}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def agent_part(body: dict) -> dict:
    (part,) = [p for p in body["parts"] if p["kind"] == "agent"]
    return part


def test_a_hold_grows_with_a_ratio_above_one_and_shrinks_below(api_client, session):
    plain = preview(api_client, session)
    local = agent_part(plain)["input_tokens"]
    assert local == plain["agents"][0]["context_tokens"] > 0  # uncalibrated: the local count

    calibrate("deepseek", "1.5")
    dearer = preview(api_client, session)
    calibrate("deepseek", "0.7")
    cheaper = preview(api_client, session)

    assert agent_part(dearer)["input_tokens"] == math.ceil(local * Decimal("1.5"))
    assert agent_part(cheaper)["input_tokens"] == math.ceil(local * Decimal("0.7"))
    assert agent_part(dearer)["output_tokens"] == agent_part(plain)["output_tokens"]  # output is capped
    assert (
        Decimal(cheaper["worst_case_credits"])
        < Decimal(plain["worst_case_credits"])
        < Decimal(dearer["worst_case_credits"])
    )
    # The context itself is counted as before: only what it is priced and budgeted at changes.
    assert dearer["agents"][0]["context_tokens"] == cheaper["agents"][0]["context_tokens"] == local
    assert (plain["agents"][0]["budget_tokens"], dearer["agents"][0]["budget_tokens"]) == (6144, 4096)
    assert cheaper["agents"][0]["budget_tokens"] == 8777  # ⌊6144 ÷ 0.7⌋


def test_without_a_calibration_in_effect_the_turn_is_sized_as_before(api_client, session, settings):
    plain = preview(api_client, session)
    settings.TOKEN_CALIBRATION_MIN_SAMPLES = 20
    calibrate("deepseek", "1.8", samples=19)  # learned from too few calls: not used yet
    assert preview(api_client, session) == plain
    calibrate("deepseek", "1")
    assert preview(api_client, session) == plain
    settings.TOKEN_CALIBRATION_MIN = settings.TOKEN_CALIBRATION_MAX = Decimal(1)  # turned off
    calibrate("deepseek", "1.8")
    assert preview(api_client, session) == plain


def test_a_calibrated_hold_is_what_the_turn_reserves(api_client, user, session, turn_post):
    worst = Decimal(preview(api_client, session)["worst_case_credits"])
    balance_set(user, worst)  # exactly the uncalibrated worst case
    calibrate("deepseek", "1.5")
    refused = turn_post("@writer tell me about the lighthouse")
    assert refused.status_code == 402
    assert refused.json()["code"] == "insufficient_credits"
    assert Decimal(refused.json()["required_credits"]) > worst
    calibrate("deepseek", "0.7")
    assert turn_post("@writer tell me about the lighthouse").status_code == 201  # the hold fits now


def test_a_ratio_above_one_trims_the_context_to_what_the_provider_will_count(
    room, fake_llm, turn_post, settings
):
    """Sixty turns of history fit the writer's 6,144 tokens by tiktoken's count (~5,200); counted as
    a provider counting 1.5 times more, they do not: the oldest are pruned to fit."""
    plain_session, calibrated_session = SessionFactory(room=room), SessionFactory(room=room)
    for session in (plain_session, calibrated_session):
        add_history(session, 60)
    plain = turn_post("@writer continue", session=plain_session)
    assert plain.status_code == 201, plain.content
    calibrate("deepseek", "1.5")
    calibrated = turn_post("@writer continue", session=calibrated_session)
    assert calibrated.status_code == 201, calibrated.content

    before = TurnContextAudit.objects.get(turn_id=plain.json()["id"])
    after = TurnContextAudit.objects.get(turn_id=calibrated.json()["id"])
    assert (before.budget_tokens, before.pruned_turn_count) == (6144, 0)
    assert before.tokens_after == before.tokens_before  # everything was sent
    assert after.budget_tokens == 4096 and after.pruned_turn_count > 0
    assert after.tokens_before == before.tokens_before  # the same history, counted the same way
    assert after.tokens_after < before.tokens_after
    # Counted as the provider counts it, what was sent stays under the prune ratio of the real budget.
    assert math.ceil(after.tokens_after * Decimal("1.5")) <= 6144 * settings.CONTEXT_PRUNE_TRIGGER_RATIO
    assert (after.context_window, after.max_output_tokens) == (8192, 2048)


def test_an_input_that_fits_only_uncalibrated_is_refused(api_client, session, turn_post):
    text = "@writer " + "a lighthouse keeper climbs the stairs " * 600  # ~4,800 tokens of 6,144
    assert preview(api_client, session, text)["refusal"] is None
    calibrate("deepseek", "1.5")  # 4,096 tokens by tiktoken's count
    refused = turn_post(text)
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "context_budget_exceeded"
    assert body["budget_tokens"] == 4096 < body["required_tokens"] <= 6144


def test_the_summarys_worst_case_is_calibrated_too(settings):
    summary = priced_models_get(aliases={settings.SUMMARY_MODEL_ALIAS})
    model = summary[settings.SUMMARY_MODEL_ALIAS]
    plain = summary_worst_case(priced=summary)
    dearer = summary_worst_case(
        priced={settings.SUMMARY_MODEL_ALIAS: replace(model, token_ratio=Decimal("1.5"))}
    )
    cheaper = summary_worst_case(
        priced={settings.SUMMARY_MODEL_ALIAS: replace(model, token_ratio=Decimal("0.7"))}
    )
    assert cheaper.credits < plain.credits < dearer.credits
