"""Balance management: adjustments are ledger entries (with the operator and a note) written in one
transaction with the balance; the balance never goes below zero nor below what is held, and always
equals the sum of the ledger."""

import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Sum

from usage.errors import AdjustmentExceedsAvailable, AdjustmentInvalid
from usage.models import CreditAccount, CreditLedgerEntry
from usage.services.accounts import credit_adjust
from usage.tests.factories import UserFactory

ACCOUNTS = "/admin/usage/creditaccount/"


def ledger_sum(user) -> Decimal:
    return CreditLedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"]


def account(user) -> CreditAccount:
    return CreditAccount.objects.get(user=user)


@pytest.fixture
def operator(db):
    return UserFactory(username="ops", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, operator):
    client.force_login(operator)
    return client


# --- the service --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_adjustment_is_a_ledger_entry_with_the_operator_and_note(operator):
    user = UserFactory(credit_account__balance=Decimal("100"))
    before = account(user).updated_at
    entry = credit_adjust(user=user, amount="250.5", note="Welcome bonus", actor=operator)
    assert entry.kind == CreditLedgerEntry.Kind.ADJUSTMENT and entry.created_by == operator
    assert entry.amount == Decimal("250.5") and entry.balance_after == Decimal("350.5")
    assert entry.note == "Welcome bonus"
    assert account(user).balance == Decimal("350.5") == ledger_sum(user)
    assert account(user).updated_at > before


@pytest.mark.django_db
def test_a_negative_adjustment_takes_at_most_what_is_available():
    user = UserFactory(credit_account__balance=Decimal("100"))
    CreditAccount.objects.filter(user=user).update(held=Decimal("60"))
    with pytest.raises(AdjustmentExceedsAvailable) as refused:
        credit_adjust(user=user, amount="-50", note="Refund reversal")
    assert refused.value.extra == {"available": "40.0000", "requested": "50"}
    assert account(user).balance == Decimal("100") and ledger_sum(user) == Decimal("100")

    credit_adjust(user=user, amount="-40", note="Refund reversal")
    assert account(user).balance == Decimal("60") == ledger_sum(user)  # what is held stays covered


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "note", "field"),
    [
        ("0", "why", "amount"),
        ("ten", "why", "amount"),
        ("1.00001", "why", "amount"),
        ("NaN", "why", "amount"),
        ("1e20", "why", "amount"),
        ("5", "   ", "note"),
        ("5", "x" * 201, "note"),
    ],
)
def test_bad_adjustments_are_refused_and_write_nothing(amount, note, field):
    user = UserFactory(credit_account__balance=Decimal("100"))
    with pytest.raises(AdjustmentInvalid) as refused:
        credit_adjust(user=user, amount=amount, note=note)
    assert field in refused.value.extra["fields"]
    assert account(user).balance == Decimal("100")
    assert not CreditLedgerEntry.objects.filter(kind=CreditLedgerEntry.Kind.ADJUSTMENT).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simultaneous_withdrawals_never_take_the_balance_below_zero():
    user = UserFactory(credit_account__balance=Decimal("1000"))
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def withdraw():
        try:
            barrier.wait()
            credit_adjust(user=user, amount="-300", note="Chargeback")
            outcomes.append("ok")
        except AdjustmentExceedsAvailable:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=withdraw) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "ok", "ok", "refused", "refused"]
    assert account(user).balance == Decimal("100") == ledger_sum(user)
    after = CreditLedgerEntry.objects.filter(user=user, kind="adjustment").values_list(
        "balance_after", flat=True
    )
    assert sorted(after) == [Decimal("100"), Decimal("400"), Decimal("700")]


# --- the command --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_credit_adjust_command_tops_up_and_says_the_new_balance(operator):
    user = UserFactory(username="ada", credit_account__balance=Decimal("10"))
    out = StringIO()
    call_command(
        "credit_adjust", "--user", "Ada", "--amount", "1500", "--note", "Top-up", "--by", "ops", stdout=out
    )
    assert (
        "ada: +1,500.0000 credits" in out.getvalue()
        and "Balance 1,510.0000, held 0.0000, available 1,510.0000" in out.getvalue()
    )
    entry = CreditLedgerEntry.objects.get(user=user, kind="adjustment")
    assert entry.created_by == operator and entry.note == "Top-up"


@pytest.mark.django_db
def test_credit_adjust_command_takes_back_with_a_negative_amount():
    user = UserFactory(username="bob", credit_account__balance=Decimal("100"))
    call_command(
        "credit_adjust", "--user", "bob", "--amount", "-25.5", "--note", "Correction", stdout=StringIO()
    )
    assert account(user).balance == Decimal("74.5") == ledger_sum(user)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody", "--amount", "5"], "No user 'nobody'"),
        (["--user", "bob", "--amount", "five"], "'five' is not a number"),
        (["--user", "bob", "--amount", "-500"], "only 100.0000 are available"),
        (["--user", "bob", "--amount", "5", "--by", "bob"], "not a staff user"),
    ],
)
def test_credit_adjust_command_fails_clearly_and_changes_nothing(args, message):
    user = UserFactory(username="bob", credit_account__balance=Decimal("100"))
    with pytest.raises(CommandError, match=message):
        call_command("credit_adjust", *args, "--note", "n", stdout=StringIO())
    assert account(user).balance == Decimal("100")


# --- the admin ----------------------------------------------------------------------------------
def test_the_adjust_action_asks_for_amount_and_note_first(staff_client):
    user = UserFactory(username="carol", credit_account__balance=Decimal("100"))
    response = staff_client.post(
        ACCOUNTS, {"action": "adjust_balance", "_selected_action": [account(user).pk]}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="amount"' in page and 'name="note"' in page and "carol" in page
    assert not CreditLedgerEntry.objects.filter(kind="adjustment").exists()


def test_the_adjust_action_writes_an_entry_signed_by_the_admin(staff_client, operator):
    user = UserFactory(username="carol", credit_account__balance=Decimal("100"))
    response = staff_client.post(
        ACCOUNTS,
        {
            "action": "adjust_balance",
            "_selected_action": [account(user).pk],
            "apply": "yes",
            "amount": "400",
            "note": "Support ticket 42",
        },
        follow=True,
    )
    assert "Adjusted 1 balance by +400.0000 credits: carol." in response.content.decode()
    entry = CreditLedgerEntry.objects.get(kind="adjustment")
    assert (entry.user, entry.amount, entry.created_by, entry.note) == (
        user,
        Decimal("400"),
        operator,
        "Support ticket 42",
    )
    assert account(user).balance == Decimal("500") == ledger_sum(user)


def test_the_adjust_action_is_all_or_nothing_across_users(staff_client):
    rich = UserFactory(username="rich", credit_account__balance=Decimal("1000"))
    poor = UserFactory(username="poor", credit_account__balance=Decimal("10"))
    response = staff_client.post(
        ACCOUNTS,
        {
            "action": "adjust_balance",
            "_selected_action": [account(rich).pk, account(poor).pk],
            "apply": "yes",
            "amount": "-50",
            "note": "Promo clawback",
        },
    )
    assert response.status_code == 200
    assert "poor: Cannot take 50.0000 credits: only 10.0000 are available" in response.content.decode()
    assert account(rich).balance == Decimal("1000") and account(poor).balance == Decimal("10")
    assert not CreditLedgerEntry.objects.filter(kind="adjustment").exists()


def test_the_adjust_action_from_the_user_list(staff_client):
    user = UserFactory(username="dave", credit_account__balance=Decimal("0"))
    staff_client.post(
        "/admin/auth/user/",
        {
            "action": "adjust_balance",
            "_selected_action": [user.pk],
            "apply": "yes",
            "amount": "5",
            "note": "Trial",
        },
    )
    assert account(user).balance == Decimal("5") == ledger_sum(user)


def test_credit_accounts_cannot_be_deleted_or_added(staff_client):
    user = UserFactory(credit_account__balance=Decimal("100"))
    pk = account(user).pk
    assert staff_client.post(f"{ACCOUNTS}{pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff_client.get(f"{ACCOUNTS}add/").status_code == 403
    listing = staff_client.get(ACCOUNTS).content.decode()
    assert "delete_selected" not in listing and "adjust_balance" in listing
    assert CreditAccount.objects.filter(pk=pk).exists()


def test_a_credit_accounts_page_is_read_only_with_no_save_button(staff_client):
    user = UserFactory(credit_account__balance=Decimal("100"))
    pk = account(user).pk
    page = staff_client.get(f"{ACCOUNTS}{pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html and "Ledger entries of" in html
    assert staff_client.post(f"{ACCOUNTS}{pk}/change/", {}).status_code == 403
    assert account(user).balance == Decimal("100")


def test_the_user_list_shows_balance_held_and_available(staff_client):
    user = UserFactory(username="erin", credit_account__balance=Decimal("1234.5"))
    CreditAccount.objects.filter(user=user).update(held=Decimal("200"))
    response = staff_client.get("/admin/auth/user/", {"q": "erin"})
    page = response.content.decode()
    assert '<td class="field-credit_balance">1,234.5000</td>' in page
    assert '<td class="field-credits_held">200.0000</td>' in page
    assert '<td class="field-credits_available">1,034.5000</td>' in page


def test_ledger_entries_are_read_only_and_name_the_operator(staff_client, operator):
    user = UserFactory(credit_account__balance=Decimal("100"))
    entry = credit_adjust(user=user, amount="1", note="n", actor=operator)
    url = f"/admin/usage/creditledgerentry/{entry.pk}/change/"
    assert staff_client.post(url, {"amount": "1000"}).status_code == 403
    assert staff_client.get("/admin/usage/creditledgerentry/add/").status_code == 403
    assert ">ops<" in staff_client.get("/admin/usage/creditledgerentry/").content.decode()
