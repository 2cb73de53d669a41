"""Decimals for people: money and credits as an operator reads them (never ``0E-12``)."""

from decimal import ROUND_HALF_UP, Decimal

USD_PLACES = 6
CREDIT_PLACES = 4


def _grouped(value: Decimal, *, places: int, min_places: int, signed: bool) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP)
    if value and not rounded:  # too small to show at this precision: say so rather than print 0
        return f">-{quantum}" if value < 0 else f"<{quantum}"
    text = f"{rounded:{'+' if signed else ''},.{places}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(min_places, "0")
    return f"{whole}.{fraction}" if fraction else whole


def usd_display(value: Decimal | None, *, signed: bool = False) -> str:
    """``0.001234``, ``1,250.50``, ``0.00``; amounts below a millionth show as ``<0.000001``."""
    if value is None:
        return "—"
    return _grouped(Decimal(value), places=USD_PLACES, min_places=2, signed=signed)


def credits_display(value: Decimal | None, *, signed: bool = False) -> str:
    """``1,500``, ``12.5``, ``0.0042``, ``+500`` (signed), to the credit's 4 decimal places."""
    if value is None:
        return "—"
    return _grouped(Decimal(value), places=CREDIT_PLACES, min_places=0, signed=signed)
