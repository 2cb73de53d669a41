"""Usage events: staged in memory while a turn runs, written with the turn (or alone, orphaned).

Whatever a provider reports is made to fit the columns when the event is staged (counts clamped,
ids cut, NUL characters removed, flagged ``figures_clamped``), so neither the turn's write nor the
orphaned write can fail on a provider's numbers: a paid call is never left unrecorded.
"""

import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from usage.metering import Price, TokenCounts, charge_compute
from usage.models import MONEY, CreditHold, CreditLedgerEntry, LlmCallEvent
from usage.services.holds import HoldRequest, credit_hold_settle
from usage.services.settlement import Settlement, charges_split

logger = logging.getLogger(__name__)

# PostgreSQL's integer: the largest token count or latency a column holds.
COUNT_MAX = 2**31 - 1
COST_MAX = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - 1


def _count(value: int | None) -> tuple[int | None, bool]:
    if value is None:
        return None, False
    clamped = min(max(int(value), 0), COUNT_MAX)
    return clamped, clamped != value


def _text(value: str, field: str) -> tuple[str, bool]:
    limit = LlmCallEvent._meta.get_field(field).max_length
    cleaned = (value or "").replace("\x00", "")[:limit]
    return cleaned, cleaned != (value or "")


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
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    tokens_estimated: bool = False,
    local_input_tokens: int | None = None,
    deployment: str = "",
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
    (input_tokens, c1), (output_tokens, c2) = _count(input_tokens), _count(output_tokens)
    # The parts are cut to their wholes (usage.metering.TokenCounts): what is stored is what is priced.
    parts = TokenCounts(
        input_tokens,
        output_tokens,
        _count(cached_input_tokens)[0],
        _count(cache_write_tokens)[0],
        _count(reasoning_tokens)[0],
    ).parts()
    cached_input_tokens, cache_write_tokens, reasoning_tokens = parts[1], parts[2], parts[4]
    local_input_tokens = _count(local_input_tokens)[0]
    (provider_input_tokens, c3), (provider_output_tokens, c4) = (
        _count(provider_input_tokens),
        _count(provider_output_tokens),
    )
    (latency_ms, _), (generation_id, c5) = _count(latency_ms), _text(generation_id, "provider_generation_id")
    provider_model, c6 = _text(provider_model, "provider_model")
    error_code, c7 = _text(error_code, "error_code")
    c8 = provider_cost_usd is not None and not (0 <= provider_cost_usd <= COST_MAX)
    if c8:
        provider_cost_usd = min(max(provider_cost_usd, Decimal(0)), COST_MAX)
    clamped = any((c1, c2, c3, c4, c5, c6, c7, c8))
    if clamped:
        logger.warning(
            "provider figures beyond the columns' range were clamped (model=%s purpose=%s)",
            model_alias,
            purpose,
        )
    charge = charge_compute(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input=cached_input_tokens,
        cache_write=cache_write_tokens,
        reasoning=reasoning_tokens,
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
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        tokens_estimated=tokens_estimated,
        local_input_tokens=local_input_tokens,
        deployment=deployment,
        provider_input_tokens=provider_input_tokens,
        provider_output_tokens=provider_output_tokens,
        provider_cost_usd=provider_cost_usd,
        oe_tokens=min(charge.oe_tokens, COUNT_MAX),
        cost_usd=charge.cost_usd,
        credits_burned=charge.credits if billable else Decimal(0),
        pricing_version_id=price.version_id,
        billable=billable,
        status=LlmCallEvent.Status.SUCCEEDED if succeeded else LlmCallEvent.Status.FAILED,
        error_code=error_code,
        latency_ms=latency_ms,
        figures_clamped=clamped,
    )


def usage_events_commit(
    *,
    user_id: int,
    events: Sequence[LlmCallEvent],
    hold: CreditHold | None,
    turn_id: uuid.UUID | None = None,
    kind: str = CreditLedgerEntry.Kind.TURN_DEBIT,
    keep_for_summary: HoldRequest | None = None,
) -> Settlement:
    """Write the events and settle the hold: debit what the billable events cost, release the rest.

    Must run inside the transaction that writes what the events are for (the turn, the summary).
    Should the balance not cover everything (the provider reported more than was held), the events
    are debited in order and each keeps what could not be billed in ``credits_unbilled``.
    """
    assert transaction.get_connection().in_atomic_block, "usage must commit with its turn"
    settlement = credit_hold_settle(
        user_id=user_id,
        hold=hold,
        charge=usage_events_charge(events),
        kind=kind,
        turn_id=turn_id,
        keep_for_summary=keep_for_summary,
    )
    usage_events_bill(events=events, debited=settlement.debited, user_id=user_id, turn_id=turn_id)
    LlmCallEvent.objects.bulk_create(events)
    return settlement


def usage_events_charge(events: Sequence[LlmCallEvent]) -> Decimal:
    """What the events cost the user: the credits of the billable ones."""
    return sum((e.credits_burned for e in events if e.billable), Decimal(0))


def usage_events_bill(
    *, events: Sequence[LlmCallEvent], debited: Decimal, user_id: int, turn_id: uuid.UUID | None
) -> None:
    """Give each event its turn and its share of the ``debited`` credits, in order
    (``usage.services.settlement.charges_split``): what could not be billed (beyond the hold) stays on
    the event as ``credits_unbilled``, flagged ``provider_overshoot``."""
    charges = [e.credits_burned if e.billable else Decimal(0) for e in events]
    for event, (burned, unbilled) in zip(events, charges_split(charges, debited), strict=True):
        event.turn_id = turn_id
        if event.billable:
            event.credits_burned, event.credits_unbilled = burned, unbilled
            event.provider_overshoot = unbilled > 0
    unbilled = sum(charges, Decimal(0)) - debited
    if unbilled:
        logger.error(
            "usage beyond the hold: %s credits could not be billed to user %s (flagged on the events)",
            unbilled,
            user_id,
        )


def usage_events_write_orphaned(*, events: Sequence[LlmCallEvent]) -> None:
    """The turn's write failed after the calls were made: the provider charged for them, so their
    events are written alone (no turn, flagged orphaned, not debited) for the operator to see.

    Never raises: it runs on the failure path, and a second failure must not hide the first.
    """
    if not events:
        return
    for event in events:
        event.turn_id = None
        event.orphaned = True
        event.billable = False
        event.credits_burned = Decimal(0)
        event.credits_unbilled = Decimal(0)
    try:
        with transaction.atomic():
            LlmCallEvent.objects.bulk_create(events)
    except Exception:
        logger.exception(
            "could not write %d orphaned usage events: %s",
            len(events),
            [(e.model_alias, e.provider_generation_id, e.input_tokens, e.output_tokens) for e in events],
        )
        return
    logger.error("wrote %d orphaned usage events after a failed turn write", len(events))
