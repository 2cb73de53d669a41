"""Usage events: staged in memory while a turn runs, written with the turn (or alone, orphaned)."""

import logging
from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F

from usage.metering import Price, charge_compute
from usage.models import CreditAccount, CreditLedgerEntry, LlmCallEvent

logger = logging.getLogger(__name__)


def usage_event_stage(
    *,
    user_id: int,
    purpose: str,
    model_alias: str,
    provider_model: str,
    price: Price,
    billable: bool,
    input_tokens: int = 0,
    output_tokens: int = 0,
    tokens_estimated: bool = False,
    succeeded: bool = True,
    error_code: str = "",
    latency_ms: int = 0,
    generation_id: str = "",
    provider_input_tokens: int | None = None,
    provider_output_tokens: int | None = None,
    provider_cost_usd: Decimal | None = None,
    room_id=None,
    session_id=None,
    agent_key: str = "",
) -> LlmCallEvent:
    """Build (not save) the event of one call, priced with the active price list.

    Non-billable events (routing, failed calls) carry their cost for the operator's review but burn
    no credits.
    """
    charge = charge_compute(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        price=price,
        credits_per_usd=settings.CREDITS_PER_USD,
    )
    billable = billable and succeeded
    return LlmCallEvent(
        user_id=user_id,
        room_id=room_id,
        session_id=session_id,
        agent_key=agent_key,
        purpose=purpose,
        model_alias=model_alias,
        provider_model=provider_model,
        provider_generation_id=generation_id,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=tokens_estimated,
        provider_input_tokens=provider_input_tokens,
        provider_output_tokens=provider_output_tokens,
        provider_cost_usd=provider_cost_usd,
        oe_tokens=charge.oe_tokens,
        cost_usd=charge.cost_usd,
        credits_burned=charge.credits if billable else Decimal(0),
        pricing_version_id=price.version_id,
        billable=billable,
        status=LlmCallEvent.Status.SUCCEEDED if succeeded else LlmCallEvent.Status.FAILED,
        error_code=error_code,
        latency_ms=latency_ms,
    )


def usage_events_commit(
    *,
    user_id: int,
    events: Sequence[LlmCallEvent],
    turn_id=None,
    kind: str = CreditLedgerEntry.Kind.TURN_DEBIT,
) -> Decimal:
    """Write events and debit the user's credits. Must run inside the transaction that writes what
    the events are for (the turn, the summary).

    Returns the credits debited.
    """
    assert transaction.get_connection().in_atomic_block, "usage must commit with its turn"
    for event in events:
        event.turn_id = turn_id
    LlmCallEvent.objects.bulk_create(events)
    debit = sum((e.credits_burned for e in events if e.billable), Decimal(0))
    if debit:
        CreditAccount.objects.filter(user_id=user_id).update(balance=F("balance") - debit)
        balance = CreditAccount.objects.values_list("balance", flat=True).get(user_id=user_id)
        CreditLedgerEntry.objects.create(
            user_id=user_id,
            kind=kind,
            amount=-debit,
            balance_after=balance,
            turn_id=turn_id,
        )
    return debit


def usage_events_write_orphaned(*, events: Sequence[LlmCallEvent]) -> None:
    """The turn's write failed after the calls were made: the provider charged for them, so their
    events are written alone (no turn, flagged orphaned, not debited) for the operator to see."""
    if not events:
        return
    for event in events:
        event.turn_id = None
        event.orphaned = True
        event.billable = False
        event.credits_burned = Decimal(0)
    with transaction.atomic():
        LlmCallEvent.objects.bulk_create(events)
    logger.error("wrote %d orphaned usage events after a failed turn write", len(events))
