"""The metering formula. Pure functions over Decimal: no floats, no database.

For a call with ``i`` input and ``o`` output tokens priced ``p_in`` and ``p_out`` USD per token:

    cost_usd = i·p_in + o·p_out                      (exact; stored with 12 decimal places)
    oe_tokens = o + ceil(i·p_in / p_out)             (output-equivalent tokens)
    credits  = cost_usd × CREDITS_PER_USD            (4 decimal places, rounded half up)

Prices are kept per million tokens, so ``p = price_per_million / 1_000_000``. Worked examples are in
docs/metering.md and are tests in usage/tests/test_metering.py.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

MILLION = Decimal(1_000_000)
CREDIT_QUANTUM = Decimal("0.0001")
COST_QUANTUM = Decimal("0.000000000001")


@dataclass(frozen=True)
class Price:
    input_usd_per_million: Decimal
    output_usd_per_million: Decimal
    version_id: int | None = None


@dataclass(frozen=True)
class Charge:
    cost_usd: Decimal
    oe_tokens: int
    credits: Decimal


def cost_usd(*, input_tokens: int, output_tokens: int, price: Price) -> Decimal:
    raw = (
        Decimal(input_tokens) * price.input_usd_per_million
        + Decimal(output_tokens) * price.output_usd_per_million
    ) / MILLION
    return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def oe_tokens(*, input_tokens: int, output_tokens: int, price: Price) -> int:
    """Output-equivalent tokens. With a free output price the input has no output equivalent,
    so only the output tokens count."""
    if price.output_usd_per_million == 0:
        return output_tokens
    ratio = Decimal(input_tokens) * price.input_usd_per_million / price.output_usd_per_million
    return output_tokens + int(ratio.to_integral_value(rounding=ROUND_CEILING))


def credits_for(*, cost: Decimal, credits_per_usd: Decimal) -> Decimal:
    return (cost * credits_per_usd).quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_UP)


def charge_compute(
    *, input_tokens: int, output_tokens: int, price: Price, credits_per_usd: Decimal
) -> Charge:
    cost = cost_usd(input_tokens=input_tokens, output_tokens=output_tokens, price=price)
    return Charge(
        cost_usd=cost,
        oe_tokens=oe_tokens(input_tokens=input_tokens, output_tokens=output_tokens, price=price),
        credits=credits_for(cost=cost, credits_per_usd=credits_per_usd),
    )
