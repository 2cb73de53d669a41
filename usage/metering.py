"""The metering formula. Pure functions over Decimal: no floats, no database.

A call reports ``i`` input tokens, of which ``c`` were read from the provider's prompt cache and
``w`` written to it, and ``o`` output tokens, of which ``r`` were reasoning. Each part has its rate
(USD per token; the cache and reasoning rates default to the input and output rates):

    cost_usd = (i − c − w)·p_in + c·p_cached + w·p_write + (o − r)·p_out + r·p_reasoning
                                                     (exact; stored with 12 decimal places)
    oe_tokens = ceil(cost_usd / p_out)               (output-equivalent tokens, the unrounded cost;
                                                      with p_out = 0, just o)
    credits  = cost_usd × CREDITS_PER_USD            (4 decimal places, rounded half up)

With no cache or reasoning tokens the cost is ``i·p_in + o·p_out`` and ``oe = o + ceil(i·p_in/p_out)``.
Counts a provider reports beyond their whole (more cached tokens than input) are cut to it, so a part
is never negative. Prices are kept per million tokens, so ``p = price_per_million / 1_000_000``.
Worked examples are in docs/metering.md and are tests in usage/tests/test_metering.py.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

MILLION = Decimal(1_000_000)
CREDIT_QUANTUM = Decimal("0.0001")
COST_QUANTUM = Decimal("0.000000000001")


@dataclass(frozen=True)
class Price:
    """USD per million tokens. A cache or reasoning rate left at None is the input (cache read and
    write) or the output (reasoning) rate."""

    input_usd_per_million: Decimal
    output_usd_per_million: Decimal
    version_id: int | None = None
    cached_input_usd_per_million: Decimal | None = None
    cache_write_usd_per_million: Decimal | None = None
    reasoning_usd_per_million: Decimal | None = None

    @property
    def cached_input(self) -> Decimal:
        return _or(self.cached_input_usd_per_million, self.input_usd_per_million)

    @property
    def cache_write(self) -> Decimal:
        return _or(self.cache_write_usd_per_million, self.input_usd_per_million)

    @property
    def reasoning(self) -> Decimal:
        return _or(self.reasoning_usd_per_million, self.output_usd_per_million)

    def ceiling(self) -> "Price":
        """The highest rate any input token or any output token may be charged: what a worst case
        priced on plain input and output counts must use to cover cache writes and reasoning."""
        return Price(
            max(self.input_usd_per_million, self.cached_input, self.cache_write),
            max(self.output_usd_per_million, self.reasoning),
            self.version_id,
        )


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def price_worst(prices: list[Price]) -> Price:
    """A price no lower than any of ``prices`` on any input or output token (their ceilings' maxima);
    the first price's version. What a hold uses when a call may be served at any of them."""
    ceilings = [p.ceiling() for p in prices]
    return Price(
        max(c.input_usd_per_million for c in ceilings),
        max(c.output_usd_per_million for c in ceilings),
        prices[0].version_id,
    )


@dataclass(frozen=True)
class TokenCounts:
    """A call's tokens: ``cached_input`` and ``cache_write`` are parts of ``input``, ``reasoning`` a
    part of ``output`` (as OpenAI and OpenRouter report them)."""

    input: int
    output: int
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def parts(self) -> tuple[int, int, int, int, int]:
        """(plain input, cache read, cache write, plain output, reasoning), each within its whole."""
        cached = min(max(self.cached_input, 0), self.input)
        write = min(max(self.cache_write, 0), self.input - cached)
        reasoning = min(max(self.reasoning, 0), self.output)
        return self.input - cached - write, cached, write, self.output - reasoning, reasoning


@dataclass(frozen=True)
class Charge:
    cost_usd: Decimal
    oe_tokens: int
    credits: Decimal


def _cost_per_million(tokens: TokenCounts, price: Price) -> Decimal:
    """The cost times a million, unrounded: every part at its rate."""
    plain_in, cached, write, plain_out, reasoning = tokens.parts()
    return (
        plain_in * price.input_usd_per_million
        + cached * price.cached_input
        + write * price.cache_write
        + plain_out * price.output_usd_per_million
        + reasoning * price.reasoning
    )


def cost_usd(*, input_tokens: int, output_tokens: int, price: Price, **parts: int) -> Decimal:
    """``parts``: ``cached_input``, ``cache_write``, ``reasoning`` (see ``TokenCounts``)."""
    tokens = TokenCounts(input_tokens, output_tokens, **parts)
    return (_cost_per_million(tokens, price) / MILLION).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def oe_tokens(*, input_tokens: int, output_tokens: int, price: Price, **parts: int) -> int:
    """Output-equivalent tokens: the cost in output tokens, rounded up. With a free output price
    nothing has an output equivalent, so only the output tokens count."""
    if price.output_usd_per_million == 0:
        return output_tokens
    tokens = TokenCounts(input_tokens, output_tokens, **parts)
    ratio = _cost_per_million(tokens, price) / price.output_usd_per_million
    return int(ratio.to_integral_value(rounding=ROUND_CEILING))


def credits_for(*, cost: Decimal, credits_per_usd: Decimal) -> Decimal:
    return (cost * credits_per_usd).quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_UP)


def charge_compute(
    *, input_tokens: int, output_tokens: int, price: Price, credits_per_usd: Decimal, **parts: int
) -> Charge:
    """``parts``: ``cached_input``, ``cache_write``, ``reasoning`` token counts (default 0)."""
    cost = cost_usd(input_tokens=input_tokens, output_tokens=output_tokens, price=price, **parts)
    return Charge(
        cost_usd=cost,
        oe_tokens=oe_tokens(input_tokens=input_tokens, output_tokens=output_tokens, price=price, **parts),
        credits=credits_for(cost=cost, credits_per_usd=credits_per_usd),
    )
