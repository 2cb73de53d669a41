"""The operator behind a ledger entry (adjustments), and when a price list was first activated: a
list that has been active (or priced any event) is frozen; one never activated is an editable draft."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Exists, OuterRef, Q


def mark_used_price_lists_activated(apps, schema_editor):
    PricingVersion = apps.get_model("usage", "PricingVersion")
    LlmCallEvent = apps.get_model("usage", "LlmCallEvent")
    priced = LlmCallEvent.objects.filter(pricing_version=OuterRef("pk"))
    PricingVersion.objects.filter(Q(is_active=True) | Exists(priced)).update(
        activated_at=models.F("created_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0006_username_unique_regardless_of_case"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="creditledgerentry",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="pricingversion",
            name="activated_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When it was first made active (None: a draft).",
                null=True,
            ),
        ),
        migrations.RunPython(mark_used_price_lists_activated, migrations.RunPython.noop),
    ]
