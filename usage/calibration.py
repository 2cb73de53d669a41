"""Token calibration: how many tokens a model's provider counts for what Pantheon counts locally.

Pantheon counts tokens with one tokenizer (tiktoken's cl100k) for every model, to size holds and
context budgets before a call; each provider counts with its own. Reconciliation learns, per catalog
model, the ratio of the provider's native input count to the local one (``usage.services.calibration``)
and the turn multiplies its local counts by it (rounded up) where it sizes a hold or a budget.

The ratio in effect is bounded: 1 until ``TOKEN_CALIBRATION_MIN_SAMPLES`` calls were learned from,
then the smoothed ratio clamped to [``TOKEN_CALIBRATION_MIN``, ``TOKEN_CALIBRATION_MAX``] (each call's
ratio is clamped to them too before it is folded in), so an odd provider record (or a provider bug)
can neither size holds at nothing nor shrink budgets to nothing.
"""

import math
from decimal import ROUND_HALF_EVEN, Decimal

from django.conf import settings

ONE = Decimal(1)
RATIO_PLACES = Decimal("0.000001")  # TokenCalibration.ratio's decimal places
RATIO_STORED_MAX = Decimal("9999.999999")  # and the most it holds


def _bounds() -> tuple[Decimal, Decimal]:
    return Decimal(str(settings.TOKEN_CALIBRATION_MIN)), Decimal(str(settings.TOKEN_CALIBRATION_MAX))


def calibration_ratio_effective(*, ratio: Decimal | str | None, samples: int) -> Decimal:
    """The ratio holds and budgets use: 1 without enough samples, else ``ratio`` within the bounds."""
    if ratio is None or samples < settings.TOKEN_CALIBRATION_MIN_SAMPLES:
        return ONE
    low, high = _bounds()
    return min(max(Decimal(ratio), low), high)


def calibration_ratio_of(*, provider: int, local: int) -> Decimal:
    """One call's own ratio, ``provider`` native tokens for ``local`` counted (as stored: at most
    ``RATIO_STORED_MAX``)."""
    ratio = (Decimal(provider) / Decimal(local)).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)
    return min(ratio, RATIO_STORED_MAX)


def calibration_ratio_update(*, ratio: Decimal, samples: int, provider: int, local: int) -> Decimal:
    """The smoothed ratio after one more call: an exponentially weighted mean in which the call's
    ratio, clamped to the bounds, weighs ``TOKEN_CALIBRATION_SMOOTHING`` (the first call sets it).
    Clamped before it is folded in, one odd provider record moves the ratio by at most the smoothing
    times the bounds' span."""
    low, high = _bounds()
    observed = min(max(Decimal(provider) / Decimal(local), low), high)
    if samples == 0:
        updated = observed
    else:
        weight = Decimal(str(settings.TOKEN_CALIBRATION_SMOOTHING))
        updated = ratio + weight * (observed - ratio)
    return updated.quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def tokens_calibrated(tokens: int, ratio: Decimal) -> int:
    """A local count as the provider would count it: ``tokens`` × ``ratio``, rounded up."""
    if ratio == ONE:
        return tokens
    return math.ceil(tokens * ratio)


def tokens_within_calibrated(tokens: int, ratio: Decimal) -> int:
    """The most local tokens whose calibrated count stays within ``tokens``: ⌊tokens ÷ ratio⌋ (a local
    count ``n`` fits exactly when ``tokens_calibrated(n, ratio) <= tokens``)."""
    if ratio == ONE:
        return tokens
    return int(Decimal(tokens) // ratio)
