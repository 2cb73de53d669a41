"""The worst case of a call at current prices: what a turn holds for it (shared by the plain turn's
hold and a discussion's)."""

from django.conf import settings

from usage.metering import charge_compute
from usage.selectors import PricedModel

ROUTING_MAX_OUTPUT_TOKENS = 256
# The framing a same-turn reply adds around an agent's output ("Name: …" as a message).
REPLY_FRAMING_TOKENS = 16


def worst_charge(model: PricedModel, input_tokens: int, output_tokens: int):
    """``input_tokens`` is a local count (tiktoken): priced as the model's provider would count it,
    multiplied by its token calibration (rounded up)."""
    return charge_compute(
        input_tokens=model.input_calibrated(input_tokens),
        output_tokens=output_tokens,
        price=model.worst_price,  # the dearest deployment an attempt may reach
        credits_per_usd=settings.CREDITS_PER_USD,
    )
