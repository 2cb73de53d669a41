from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from pantheon.errors import InvalidInput
from usage.errors import AdjustmentExceedsAvailable, AdjustmentInvalid, CreditAccountMissing
from usage.models import CREDITS, AccountName, CreditAccount, CreditLedgerEntry
from usage.usernames import username_normalize, username_skeleton

# The largest amount the balance column can hold (18 digits, 4 of them decimals).
CREDITS_LIMIT = Decimal(10) ** (CREDITS["max_digits"] - CREDITS["decimal_places"])
NOTE_MAX_LENGTH = CreditLedgerEntry._meta.get_field("note").max_length

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


def credit_amount_parse(value: str | Decimal) -> Decimal:
    """A signed, non-zero amount of credits with at most 4 decimal places (``AdjustmentInvalid``
    otherwise): what an operator types, checked before anything is written."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise AdjustmentInvalid.for_field("amount", f"'{value}' is not a number.") from exc
    if not amount.is_finite() or amount == 0:
        raise AdjustmentInvalid.for_field("amount", "Give a non-zero number of credits.")
    if amount.as_tuple().exponent < -CREDITS["decimal_places"]:
        raise AdjustmentInvalid.for_field("amount", "Credits have at most 4 decimal places.")
    if abs(amount) >= CREDITS_LIMIT:
        raise AdjustmentInvalid.for_field("amount", f"Give less than {CREDITS_LIMIT:,} credits.")
    return amount


@transaction.atomic
def credit_adjust(
    *, user: AbstractBaseUser, amount: Decimal | str, note: str, actor: AbstractBaseUser | None = None
) -> CreditLedgerEntry:
    """Add (or, negative, take) credits: the balance and an ``adjustment`` ledger entry naming the
    operator and the reason change together, or neither does.

    One conditional UPDATE does the change, so it is safe against turns debiting and holding at the
    same moment: a negative amount is refused (``AdjustmentExceedsAvailable``) unless the balance
    less what is held covers it, so the balance never goes below zero nor below what work in flight
    has reserved.
    """
    amount = credit_amount_parse(amount)
    note = (note or "").strip()
    if not note:
        raise AdjustmentInvalid.for_field("note", "Say why: the note is kept in the ledger.")
    if len(note) > NOTE_MAX_LENGTH:
        raise AdjustmentInvalid.for_field("note", f"At most {NOTE_MAX_LENGTH} characters.")

    accounts = CreditAccount.objects.filter(user=user)
    if amount > 0:
        fits = accounts.filter(balance__lt=CREDITS_LIMIT - amount)
    else:
        fits = accounts.filter(balance__gte=F("held") - amount)
    if not fits.update(balance=F("balance") + amount, updated_at=timezone.now()):
        account = accounts.first()
        if account is None:
            raise CreditAccountMissing()
        if amount > 0:
            raise AdjustmentInvalid.for_field("amount", "The balance would exceed what an account holds.")
        raise AdjustmentExceedsAvailable(available=account.available, requested=-amount)
    balance = accounts.values_list("balance", flat=True).get()
    return CreditLedgerEntry.objects.create(
        user=user,
        kind=CreditLedgerEntry.Kind.ADJUSTMENT,
        amount=amount,
        balance_after=balance,
        note=note,
        created_by=actor,
    )


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "") -> AbstractBaseUser:
    """A new self-registered user with ``REGISTRATION_OPENING_CREDITS`` (not the operator's
    ``CREDITS_OPENING_BALANCE``: anyone can register, so what it grants is what a farm earns).
    Usernames are unique regardless of case: ``Ada`` is taken once ``ada`` exists (400 on
    ``username``)."""
    users = get_user_model().objects
    normalized, skeleton = username_normalize(username), username_skeleton(username)
    taken = AccountName.objects.filter(Q(normalized=normalized) | Q(skeleton=skeleton))
    if taken.exists() or users.filter(username__iexact=username).exists():
        raise InvalidInput.for_field("username", USERNAME_TAKEN)
    try:
        # Simultaneous registrations all pass the check above; the unique indexes of AccountName
        # (written with the user: account_name_sync) let one in. The savepoint keeps the
        # surrounding transaction usable for the error.
        with transaction.atomic():
            user = users.create_user(username=username, password=password, email=email)
    except IntegrityError as exc:
        raise InvalidInput.for_field("username", USERNAME_TAKEN) from exc
    credit_account_open(user=user, opening_balance=settings.REGISTRATION_OPENING_CREDITS)
    return user


def account_name_sync(
    *, instance: AbstractBaseUser, created: bool, update_fields=None, raw: bool = False, **kwargs
) -> None:
    """Keep a user's compared name (``AccountName``) with its username; an ``IntegrityError`` when
    another account already has it (in case, compatibility form or look)."""
    if raw or (update_fields is not None and "username" not in update_fields):
        return  # a fixture load, or a save that leaves the name alone (last_login at each login)
    username = instance.get_username()
    AccountName.objects.update_or_create(
        user_id=instance.pk,
        defaults={"normalized": username_normalize(username), "skeleton": username_skeleton(username)},
    )
