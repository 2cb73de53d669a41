"""Factories of the usage app's rows (and of users, who own them).

Rows that carry an invariant are made the way the services make them: an account is opened with its
grant in the ledger, a ledger entry moves the balance, a hold raises ``held``. Test data then
satisfy the same checks (balance = ledger sum, held = open holds) as production data.
"""

from datetime import timedelta
from decimal import Decimal

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from usage.models import (
    CreditAccount,
    CreditHold,
    CreditLedgerEntry,
    LlmCallEvent,
    LlmModel,
    ModelPrice,
    PricingVersion,
    UsageDailyRollup,
)
from usage.services.accounts import credit_account_open

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    """A user as registration leaves them: with a credit account and its opening grant.

    ``UserFactory(credit_account=None)`` makes one without an account (a user created elsewhere);
    ``UserFactory(credit_account__balance=Decimal("5"))`` opens it with another balance.
    """

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)
    credit_account = factory.RelatedFactory(
        "usage.tests.factories.CreditAccountFactory", factory_related_name="user"
    )


class CreditAccountFactory(factory.django.DjangoModelFactory):
    """Opened through ``credit_account_open``: the balance arrives as a ``grant`` ledger entry."""

    class Meta:
        model = CreditAccount

    user = factory.SubFactory(UserFactory, credit_account=None)
    balance = factory.LazyFunction(lambda: Decimal(settings.CREDITS_OPENING_BALANCE))

    @classmethod
    def _create(cls, model_class, *, user, balance, **fields):
        if fields:
            raise TypeError(f"an account is opened with a user and a balance only, not {sorted(fields)}")
        return credit_account_open(user=user, opening_balance=Decimal(balance))


class CreditLedgerEntryFactory(factory.django.DjangoModelFactory):
    """A change of a balance, applied to the account as the services apply it (``balance_after``
    is the account's new balance). Negative amounts are debits."""

    class Meta:
        model = CreditLedgerEntry

    user = factory.SubFactory(UserFactory)
    kind = CreditLedgerEntry.Kind.ADJUSTMENT
    amount = Decimal("10")
    note = "Test adjustment"

    @classmethod
    def _create(cls, model_class, *, user, amount, **fields):
        with transaction.atomic():
            account = CreditAccount.objects.select_for_update().get(user=user)
            account.balance += Decimal(amount)
            account.save(update_fields=["balance", "updated_at"])
            return model_class.objects.create(
                user=user, amount=amount, balance_after=account.balance, **fields
            )


def balance_set(user, amount: Decimal | str) -> None:
    """Bring the user's balance to ``amount`` through an adjustment in the ledger, as an operator
    would: the books (balance = the ledger's sum) stay true."""
    difference = Decimal(amount) - CreditAccount.objects.get(user=user).balance
    if difference:
        CreditLedgerEntryFactory(user=user, amount=difference, note="test: balance set")


class CreditHoldFactory(factory.django.DjangoModelFactory):
    """Credits reserved by work in flight; the account's ``held`` rises by the same amount."""

    class Meta:
        model = CreditHold

    user = factory.SubFactory(UserFactory)
    kind = CreditHold.Kind.TURN
    amount = Decimal("5")
    cost_usd = factory.LazyAttribute(lambda h: Decimal(h.amount) / 1000)
    model_alias = "deepseek"
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=5))

    @classmethod
    def _create(cls, model_class, *, user, amount, **fields):
        with transaction.atomic():
            CreditAccount.objects.filter(user=user).update(held=F("held") + Decimal(amount))
            return model_class.objects.create(user=user, amount=amount, **fields)


class LlmModelFactory(factory.django.DjangoModelFactory):
    """A catalog entry besides the seeded ones (``deepseek``, ``qwen``, ``gpt-4o-mini`` …)."""

    class Meta:
        model = LlmModel

    alias = factory.Sequence(lambda n: f"model-{n}")
    provider_model = factory.LazyAttribute(lambda m: f"vendor/{m.alias}")
    display_name = factory.LazyAttribute(lambda m: m.alias.title())
    context_window = 32768
    max_output_tokens = 4096


class PricingVersionFactory(factory.django.DjangoModelFactory):
    """A price list, inactive unless asked (exactly one may be active: deactivate the seeded one)."""

    class Meta:
        model = PricingVersion

    name = factory.Sequence(lambda n: f"test-prices-{n}")
    is_active = False


class ModelPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelPrice

    version = factory.SubFactory(PricingVersionFactory)
    model = factory.SubFactory(LlmModelFactory)
    input_usd_per_million = Decimal("0.30")
    output_usd_per_million = Decimal("0.85")


def active_pricing_version() -> PricingVersion | None:
    return PricingVersion.objects.filter(is_active=True).first()


class LlmCallEventFactory(factory.django.DjangoModelFactory):
    """One metered call. The default figures are an ordinary deepseek reply priced by the seeded list
    (1,000 in + 500 out at 0.30 / 0.85 USD per million: docs/metering.md's first worked example)."""

    class Meta:
        model = LlmCallEvent

    user = factory.SubFactory(UserFactory)
    purpose = LlmCallEvent.Purpose.AGENT_REPLY
    agent_key = "writer"
    model_alias = "deepseek"
    provider_model = "deepseek/deepseek-chat"
    provider_generation_id = factory.Sequence(lambda n: f"gen-test-{n}")
    input_tokens = 1000
    output_tokens = 500
    oe_tokens = 853
    cost_usd = Decimal("0.000725")
    credits_burned = Decimal("0.7250")
    pricing_version = factory.LazyFunction(active_pricing_version)

    class Params:
        # Not billed to the user (a routing call): the cost stays, no credits burned.
        unbilled = factory.Trait(billable=False, credits_burned=Decimal("0"))
        failed = factory.Trait(
            status=LlmCallEvent.Status.FAILED,
            error_code="provider_unavailable",
            billable=False,
            provider_generation_id="",
            output_tokens=0,
            oe_tokens=0,
            cost_usd=Decimal("0"),
            credits_burned=Decimal("0"),
        )


class UsageDailyRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageDailyRollup

    day = factory.LazyFunction(lambda: timezone.localdate())
    user = factory.SubFactory(UserFactory)
    model_alias = "deepseek"
    events = 1
    input_tokens = 1000
    output_tokens = 500
    cost_usd = Decimal("0.000725")
    billed_cost_usd = Decimal("0.000725")
    credits_burned = Decimal("0.7250")
    provider_cost_usd = Decimal("0.000725")
