"""Decimals for people: money and credits as an operator reads them (never ``0E-12``), one format
wherever a person reads them: fixed decimals (USD to the millionth, credits to the ten-thousandth,
so figures in a column line up and 0 reads ``0.0000`` like its neighbours), thousands separators;
the unit is the column's or follows the figure (``credits_with_unit``, ``usd_with_unit``)."""

from decimal import ROUND_HALF_UP, Decimal

USD_PLACES = 6
CREDIT_PLACES = 4


def _grouped(value: Decimal, *, places: int, signed: bool) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP)
    if value and not rounded:  # too small to show at this precision: say so rather than print 0
        return f">-{quantum}" if value < 0 else f"<{quantum}"
    text = f"{rounded:{'+' if signed else ''},.{places}f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction}" if fraction else whole


def usd_display(value: Decimal | None, *, signed: bool = False) -> str:
    """``0.001234``, ``1,250.500000``, ``0.000000``; amounts below a millionth show as ``<0.000001``."""
    if value is None:
        return "—"
    return _grouped(Decimal(value), places=USD_PLACES, signed=signed)


def credits_display(value: Decimal | None, *, signed: bool = False) -> str:
    """``1,500.0000``, ``12.5000``, ``0.0042``, ``+500.0000`` (signed), to the credit's 4 decimal places."""
    if value is None:
        return "—"
    return _grouped(Decimal(value), places=CREDIT_PLACES, signed=signed)


def credits_with_unit(value: Decimal | None, *, signed: bool = False) -> str:
    """``1,500.0000 credits``, ``+1.0000 credits`` — for sentences."""
    return f"{credits_display(value, signed=signed)} credits"


def usd_with_unit(value: Decimal | None) -> str:
    """``0.001104 USD`` — for sentences and tooltips."""
    return f"{usd_display(value)} USD"
