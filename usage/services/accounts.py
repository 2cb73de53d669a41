from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from usage.models import CreditAccount, CreditLedgerEntry


@transaction.atomic
def credit_account_open(*, user: AbstractBaseUser, opening_balance: Decimal | None = None) -> CreditAccount:
    """Give a user a credit account with the opening grant (idempotent)."""
    amount = settings.CREDITS_OPENING_BALANCE if opening_balance is None else opening_balance
    account, created = CreditAccount.objects.get_or_create(user=user, defaults={"balance": amount})
    if created and amount:
        CreditLedgerEntry.objects.create(
            user=user,
            kind=CreditLedgerEntry.Kind.GRANT,
            amount=amount,
            balance_after=amount,
            note="Opening balance",
        )
    return account


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "") -> AbstractBaseUser:
    user = get_user_model().objects.create_user(username=username, password=password, email=email)
    credit_account_open(user=user)
    return user
