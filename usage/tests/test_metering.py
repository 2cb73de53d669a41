from decimal import Decimal

import pytest

from usage.metering import Price, charge_compute

DEEPSEEK = Price(Decimal("0.30"), Decimal("0.85"))
QWEN = Price(Decimal("0.12"), Decimal("0.39"))
HAIKU = Price(Decimal("0.80"), Decimal("4.00"))
THOUSAND = Decimal(1000)


@pytest.mark.parametrize(
    ("price", "i", "o", "cost", "oe", "credits"),
    [
        (DEEPSEEK, 1000, 500, "0.000725", 853, "0.7250"),
        (HAIKU, 12345, 678, "0.012588", 3147, "12.5880"),
        (QWEN, 0, 15, "0.00000585", 15, "0.0059"),
        (DEEPSEEK, 1, 0, "0.0000003", 1, "0.0003"),
    ],
    ids=["ordinary-reply", "long-context", "rounding-half-up", "oe-rounds-up"],
)
def test_worked_examples_from_docs(price, i, o, cost, oe, credits):
    charge = charge_compute(input_tokens=i, output_tokens=o, price=price, credits_per_usd=THOUSAND)
    assert charge.cost_usd == Decimal(cost)
    assert charge.oe_tokens == oe
    assert charge.credits == Decimal(credits)
    assert isinstance(charge.cost_usd, Decimal) and isinstance(charge.credits, Decimal)


def test_credits_round_half_up_not_to_even():
    charge = charge_compute(input_tokens=0, output_tokens=15, price=QWEN, credits_per_usd=THOUSAND)
    assert str(charge.credits) == "0.0059"


def test_free_output_price_counts_only_output_tokens_as_oe():
    free_out = Price(Decimal("1.00"), Decimal("0"))
    charge = charge_compute(input_tokens=1000, output_tokens=7, price=free_out, credits_per_usd=THOUSAND)
    assert charge.oe_tokens == 7
    assert charge.cost_usd == Decimal("0.001")


def test_credits_per_usd_scales_credits():
    charge = charge_compute(input_tokens=1000, output_tokens=500, price=DEEPSEEK, credits_per_usd=Decimal(10))
    assert charge.credits == Decimal("0.0073")  # 0.00725 rounded half up
