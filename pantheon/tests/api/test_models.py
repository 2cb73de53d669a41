"""GET /api/v1/models: the active catalog with context windows and the active price list's prices."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from usage.models import LlmModel, ModelPrice, PricingVersion
from usage.tests.factories import LlmModelFactory, ModelPriceFactory, PricingVersionFactory

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/models"


def by_alias(response) -> dict[str, dict]:
    return {m["alias"]: m for m in response.json()}


def test_models_lists_the_active_catalog_with_current_prices(api_client):
    response = api_client.get(MODELS)
    assert response.status_code == 200
    models = by_alias(response)
    assert {"deepseek", "qwen", "gpt-4o-mini"} <= set(models)
    assert list(models) == sorted(models)
    deepseek = models["deepseek"]
    assert set(deepseek) == {
        "alias",
        "provider_model",
        "display_name",
        "context_window",
        "max_output_tokens",
        "input_usd_per_million",
        "output_usd_per_million",
        "pricing_version",
    }
    price = ModelPrice.objects.get(model__alias="deepseek", version__is_active=True)
    assert deepseek["provider_model"] == "deepseek/deepseek-chat"
    assert deepseek["input_usd_per_million"] == str(price.input_usd_per_million)
    assert deepseek["output_usd_per_million"] == str(price.output_usd_per_million)
    assert Decimal(deepseek["input_usd_per_million"]) > 0  # a decimal string, not a float
    assert deepseek["pricing_version"] == PricingVersion.objects.get(is_active=True).name
    assert deepseek["context_window"] > deepseek["max_output_tokens"] > 0


def test_inactive_models_are_not_listed(api_client):
    LlmModel.objects.filter(alias="llama").update(is_active=False)
    models = by_alias(api_client.get(MODELS))
    assert "llama" not in models and "deepseek" in models


def test_prices_follow_the_active_price_list(api_client):
    PricingVersion.objects.update(is_active=False)
    ModelPriceFactory(
        version=PricingVersionFactory(name="2099-01", is_active=True),
        model=LlmModel.objects.get(alias="qwen"),
        input_usd_per_million=Decimal("1.5"),
        output_usd_per_million=Decimal("4.25"),
    )
    models = by_alias(api_client.get(MODELS))
    assert (models["qwen"]["input_usd_per_million"], models["qwen"]["output_usd_per_million"]) == (
        "1.500000",
        "4.250000",
    )
    assert models["qwen"]["pricing_version"] == "2099-01"
    # A model the active list does not price shows no price rather than an old one.
    assert models["deepseek"]["input_usd_per_million"] is None
    assert models["deepseek"]["pricing_version"] is None


def test_a_new_catalog_model_is_listed_with_its_price(api_client):
    ModelPriceFactory(
        version=PricingVersion.objects.get(is_active=True),
        model=LlmModelFactory(
            alias="mistral", provider_model="mistralai/mistral-small", context_window=32768
        ),
    )
    mistral = by_alias(api_client.get(MODELS))["mistral"]
    assert (mistral["provider_model"], mistral["context_window"]) == ("mistralai/mistral-small", 32768)
    assert Decimal(mistral["input_usd_per_million"]) == Decimal("0.30")


def test_models_need_credentials(anon_client):
    response = anon_client.get(MODELS)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_exactly_one_price_list_can_be_active():
    with pytest.raises(IntegrityError), transaction.atomic():
        PricingVersionFactory(is_active=True)
    assert PricingVersion.objects.filter(is_active=True).count() == 1
