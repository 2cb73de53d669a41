"""The money of a commit, each rule written twice side by side: in plain Python (what the summary's
commit and the tests run) and as the SQL the turn's one-statement commit embeds
(``orchestration/turns/store.py``). ``usage/tests/services/test_settlement.py`` runs both on
PostgreSQL over random balances, holds, charges and shares, and requires the same figures.

1. **Settlement** — what a commit debits. A charge never exceeds what was held: the debit is capped
   at the released hold less the share kept for the summary, and at what the balance covers once the
   *other* holds (and that share) are kept whole. What the calls cost beyond it is not taken; it is
   recorded on the events as unbilled.
2. **Budgets** — each share the hold reserved of a budget's period (``CreditHold.budget_shares``)
   leaves ``held``; what the turn was charged (all of the debit, or for a budget on one model alias
   its events' credits) is added to ``spent``, never more than the share; the summary's part stays
   held, moved to the summary's hold. Python: ``usage.services.budgets.budget_shares_settle``.
3. **The per-event split** — the events of a commit are debited in order: each burns its charge while
   the debit lasts, and keeps the rest as ``credits_unbilled``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Settlement:
    """What a commit debited; ``unbilled`` is what it could not (beyond the hold or the balance).
    ``held_after`` and ``kept`` (the part of the hold moved to the summary's) are the account's new
    figures."""

    debited: Decimal
    unbilled: Decimal
    balance_after: Decimal
    held_after: Decimal = ZERO
    kept: Decimal = ZERO


def settlement_compute(
    *, balance: Decimal, held: Decimal, released: Decimal, charge: Decimal, keep: Decimal
) -> Settlement:
    """The money of a commit, from the locked account's figures: ``released`` is the hold being
    settled (0 if the sweep took it), ``charge`` what the calls cost the user, ``keep`` the summary's
    share to move into a hold of its own (never more than was held). Same rule: ``SETTLEMENT_SQL``."""
    kept = min(keep, released)
    coverable = max(min(released, balance - (held - released)) - kept, ZERO)
    debited = min(charge, coverable)
    return Settlement(
        debited=debited,
        unbilled=charge - debited,
        balance_after=balance - debited,
        held_after=held - (released - kept),
        kept=kept,
    )


# The same rule over the locked account ``a`` (balance, held) and the released hold ``r`` (amount):
# parameters, in order, are (keep, charge, keep) — ``settlement_params``.
SETTLEMENT_SQL = """a.balance, a.held, r.amount AS released, LEAST(%s::numeric, r.amount) AS kept,
    LEAST(%s::numeric, GREATEST(LEAST(r.amount, a.balance - (a.held - r.amount))
                                - LEAST(%s::numeric, r.amount), 0)) AS debit"""


def settlement_params(*, charge: Decimal, keep: Decimal) -> list[Decimal]:
    return [keep, charge, keep]


def charges_split(charges: Sequence[Decimal], debited: Decimal) -> list[tuple[Decimal, Decimal]]:
    """``(burned, unbilled)`` of each charge when ``debited`` is spread over them in order. Same rule:
    ``EVENT_BURNED_SQL``, with each charge's prefix (the charges before it) from ``charge_prefixes``."""
    return [
        (burned := min(charge, max(debited - prefix, ZERO)), charge - burned)
        for charge, prefix in zip(charges, charge_prefixes(charges), strict=True)
    ]


def charge_prefixes(charges: Sequence[Decimal]) -> list[Decimal]:
    prefixes, running = [], ZERO
    for charge in charges:
        prefixes.append(running)
        running += charge
    return prefixes


# An event's burned credits from its row ``r`` (charge, prefix) and the settlement ``calc`` (debit).
EVENT_BURNED_SQL = "LEAST(r.charge, GREATEST(calc.debit - r.prefix, 0))"


# The budgets' periods at a turn's commit, over the released hold's shares ``x`` (``released``), the
# settlement ``calc`` and the inserted events ``e`` (model_alias, credits_burned).
BUDGET_SETTLE_SQL = """UPDATE {usage} bp SET held = bp.held - (x.a - LEAST(x.s, calc.kept)),
    spent = bp.spent + LEAST(x.a - LEAST(x.s, calc.kept), CASE WHEN x.m = '' THEN calc.debit
      ELSE (SELECT COALESCE(SUM(e.credits_burned), 0) FROM e WHERE e.model_alias = x.m) END)
  FROM calc, released,
    jsonb_to_recordset(released.budget_shares) AS x(u bigint, a numeric, s numeric, m text)
  WHERE bp.id = x.u"""
# The shares the summary's hold keeps (its part of each budget), as the summary hold's budget_shares.
BUDGET_SHARES_KEPT_SQL = """COALESCE((SELECT jsonb_agg(jsonb_build_object(
    'u', x.u, 'a', LEAST(x.s, calc.kept)::text, 's', '0', 'm', x.m) ORDER BY x.u)
  FROM released, jsonb_to_recordset(released.budget_shares) AS x(u bigint, a numeric, s numeric, m text)
  WHERE LEAST(x.s, calc.kept) > 0), '[]'::jsonb)"""
