from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from pantheon.errors import InvalidInput
from usage.models import CreditAccount, CreditLedgerEntry

USERNAME_TAKEN = "This username is taken."


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
    """A new user with the opening credits. Usernames are unique regardless of case: ``Ada`` is taken
    once ``ada`` exists (400 on ``username``)."""
    users = get_user_model().objects
    if users.filter(username__iexact=username).exists():
        raise InvalidInput.for_field("username", USERNAME_TAKEN)
    try:
        # Simultaneous registrations all pass the check above; the unique index on lower(username)
        # lets one in. The savepoint keeps the surrounding transaction usable for the error.
        with transaction.atomic():
            user = users.create_user(username=username, password=password, email=email)
    except IntegrityError as exc:
        raise InvalidInput.for_field("username", USERNAME_TAKEN) from exc
    credit_account_open(user=user)
    return user
