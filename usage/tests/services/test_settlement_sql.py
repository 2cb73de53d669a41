"""Each money rule of ``usage.services.settlement`` is written twice — in Python, and as the SQL the
turn's commit statement embeds. Here PostgreSQL runs the SQL over random balances, holds, charges and
shares, and every figure must equal the Python rule's."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from usage.services.settlement import (
    EVENT_BURNED_SQL,
    SETTLEMENT_SQL,
    charge_prefixes,
    charges_split,
    settlement_compute,
    settlement_params,
)

pytestmark = pytest.mark.django_db

# Credits as the columns hold them: 4 decimal places (CREDITS), up to a million.
credits = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False)
examples = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _settlement_sql(*, balance, held, released, charge, keep) -> tuple[Decimal, Decimal]:
    sql = (
        f"SELECT calc.kept, calc.debit FROM (SELECT {SETTLEMENT_SQL} FROM "
        "(SELECT %s::numeric AS balance, %s::numeric AS held) a, (SELECT %s::numeric AS amount) r) calc"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*settlement_params(charge=charge, keep=keep), balance, held, released])
        return cursor.fetchone()


@examples
@given(balance=credits, other_holds=credits, released=credits, charge=credits, keep=credits)
def test_the_settlement_statement_debits_what_the_python_rule_does(
    balance, other_holds, released, charge, keep
):
    held = other_holds + released  # the account's held always includes the hold being settled
    kept, debit = _settlement_sql(balance=balance, held=held, released=released, charge=charge, keep=keep)
    rule = settlement_compute(balance=balance, held=held, released=released, charge=charge, keep=keep)
    assert (kept, debit) == (rule.kept, rule.debited)
    # The rule's promises, whatever the figures.
    assert rule.debited <= max(released - rule.kept, Decimal(0))  # never more than was held
    assert rule.debited + rule.unbilled == charge
    assert rule.debited == 0 or rule.balance_after >= other_holds + rule.kept


@examples
@given(charges=st.lists(credits, max_size=8), debited=credits)
def test_each_events_share_of_the_debit_is_the_python_rule(charges, debited):
    debited = min(debited, sum(charges, Decimal(0)))  # a settlement never debits more than the charges
    sql = (
        f"SELECT {EVENT_BURNED_SQL} FROM jsonb_to_recordset(%s::jsonb) AS r(n int, charge numeric, "
        "prefix numeric), (SELECT %s::numeric AS debit) calc ORDER BY r.n"
    )
    rows = [
        {"n": n, "charge": str(c), "prefix": str(p)}
        for n, (c, p) in enumerate(zip(charges, charge_prefixes(charges), strict=True))
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows), debited])
        burned = [b for (b,) in cursor.fetchall()]
    split = charges_split(charges, debited)
    assert burned == [b for b, _ in split]
    assert sum(burned, Decimal(0)) == debited
    assert all(b + u == c for (b, u), c in zip(split, charges, strict=True))
