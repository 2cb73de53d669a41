"""Seed the model catalog and the first price list (USD per million tokens; editable in admin)."""

from decimal import Decimal

from django.db import migrations

CATALOG = [
    # alias, provider model, display name, context window, max output, input $/M, output $/M
    ("deepseek", "deepseek/deepseek-chat", "DeepSeek V3", 163840, 8192, "0.30", "0.85"),
    ("qwen", "qwen/qwen-2.5-72b-instruct", "Qwen 2.5 72B Instruct", 32768, 8192, "0.12", "0.39"),
    ("gpt-4o-mini", "openai/gpt-4o-mini", "GPT-4o mini", 128000, 16384, "0.15", "0.60"),
    ("claude-haiku", "anthropic/claude-3.5-haiku", "Claude 3.5 Haiku", 200000, 8192, "0.80", "4.00"),
    ("llama", "meta-llama/llama-3.3-70b-instruct", "Llama 3.3 70B Instruct", 131072, 8192, "0.13", "0.40"),
]


def seed(apps, schema_editor):
    LlmModel = apps.get_model("usage", "LlmModel")
    PricingVersion = apps.get_model("usage", "PricingVersion")
    ModelPrice = apps.get_model("usage", "ModelPrice")
    version, _ = PricingVersion.objects.get_or_create(
        name="2026-11-initial", defaults={"is_active": True, "notes": "Seed price list."}
    )
    for alias, provider_model, display, window, max_out, p_in, p_out in CATALOG:
        model, _ = LlmModel.objects.update_or_create(
            alias=alias,
            defaults={
                "provider_model": provider_model,
                "display_name": display,
                "context_window": window,
                "max_output_tokens": max_out,
                "is_active": True,
            },
        )
        ModelPrice.objects.update_or_create(
            version=version,
            model=model,
            defaults={"input_usd_per_million": Decimal(p_in), "output_usd_per_million": Decimal(p_out)},
        )


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
