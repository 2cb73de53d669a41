"""Syncing the catalog from the provider's model list (the fake server lists OpenRouter-style cards)."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from usage.models import LlmModel, ModelPrice, PricingVersion
from usage.tests.factories import LlmCallEventFactory

pytestmark = pytest.mark.django_db


def test_dry_run_shows_differences_and_writes_nothing(fake_llm):
    before = list(PricingVersion.objects.values_list("name", flat=True))
    out = StringIO()
    call_command("catalog_sync", stdout=out)
    text = out.getvalue()
    assert "deepseek       context_window: 163840 -> 131072" in text
    assert "qwen           USD per million in / out: 0.12 / 0.39 -> 0.3 / 0.85" in text
    assert "claude-haiku   not listed by the provider" in text
    assert "run with --apply" in text
    assert list(PricingVersion.objects.values_list("name", flat=True)) == before
    assert LlmModel.objects.get(alias="deepseek").context_window == 163840


def test_apply_updates_windows_and_publishes_a_new_price_list(fake_llm, user):
    old = PricingVersion.objects.get(is_active=True)
    event = LlmCallEventFactory(user=user, model_alias="qwen", pricing_version=old)
    call_command("catalog_sync", "--apply", stdout=StringIO())
    new = PricingVersion.objects.get(is_active=True)
    assert new.pk != old.pk and new.name.startswith("sync-")
    qwen = ModelPrice.objects.get(version=new, model__alias="qwen")
    assert (qwen.input_usd_per_million, qwen.output_usd_per_million) == (Decimal("0.3"), Decimal("0.85"))
    haiku = ModelPrice.objects.get(version=new, model__alias="claude-haiku")  # unlisted: carried over
    assert haiku.input_usd_per_million == Decimal("0.8")
    assert LlmModel.objects.get(alias="qwen").max_output_tokens == 16384
    event.refresh_from_db()
    assert event.pricing_version_id == old.pk  # history keeps the version it was priced with
    out = StringIO()
    call_command("catalog_sync", stdout=out)
    assert "The catalog matches the provider." in out.getvalue()


def test_without_a_provider_the_command_says_so(settings):
    settings.LLM_PROVIDER = "offline"
    with pytest.raises(CommandError, match="No provider is configured"):
        call_command("catalog_sync", stdout=StringIO())
