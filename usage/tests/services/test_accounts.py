"""Credit accounts: opened with their grant, once per user, for users made by any path."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from usage.models import CreditAccount, CreditLedgerEntry
from usage.services.accounts import credit_account_open
from usage.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_an_account_opens_with_its_grant_and_only_once(settings):
    user = UserFactory(credit_account=None)
    first = credit_account_open(user=user)
    again = credit_account_open(user=user, opening_balance=Decimal("5"))
    assert again.pk == first.pk and again.balance == settings.CREDITS_OPENING_BALANCE
    grant = CreditLedgerEntry.objects.get(user=user)
    assert (grant.kind, grant.amount, grant.balance_after) == ("grant", first.balance, first.balance)


def test_users_created_elsewhere_get_their_account_from_the_command():
    user = UserFactory(credit_account=None)  # made by the admin or createsuperuser: no account yet
    call_command("credit_accounts_open", stdout=StringIO())
    call_command("credit_accounts_open", stdout=StringIO())
    assert CreditAccount.objects.filter(user=user).count() == 1
