from decimal import Decimal

import pytest

from usage.metering import Price, charge_compute, price_worst

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


# --- cache and reasoning parts (docs/metering.md, "Cache and reasoning tokens") -------------------
# Every rate apart from every other, so pricing a part at another part's rate changes the result.
PARTS = Price(
    Decimal("2.00"),
    Decimal("10.00"),
    cached_input_usd_per_million=Decimal("0.50"),
    cache_write_usd_per_million=Decimal("2.50"),
    reasoning_usd_per_million=Decimal("8.00"),
)


@pytest.mark.parametrize(
    ("i", "c", "w", "o", "r", "cost", "oe", "credits"),
    [
        # 3,000×2 + 6,000×0.5 + 1,000×2.5 + 1,500×10 + 500×8 = 30,500 per million
        (10_000, 6_000, 1_000, 2_000, 500, "0.0305", 3050, "30.5000"),
        # 3×2 + 3×0.5 + 1×2.5 + 3×10 + 2×8 = 56 per million; OE = ceil(5.6)
        (7, 3, 1, 5, 2, "0.000056", 6, "0.0560"),
        # no parts: the plain formula, 10,000×2 + 2,000×10
        (10_000, 0, 0, 2_000, 0, "0.04", 4000, "40.0000"),
        # more cached than input is cut to the input: 100×0.5; reasoning beyond output cut to it: 10×8
        (100, 150, 0, 10, 99, "0.00013", 13, "0.1300"),
        # a cache write beyond what the cache read left: 80×0.5 + 20×2.5
        (100, 80, 50, 0, 0, "0.00009", 9, "0.0900"),
    ],
    ids=["every-part", "oe-rounds-up", "no-parts", "parts-cut-to-their-whole", "write-cut-after-read"],
)
def test_each_part_is_priced_at_its_own_rate(i, c, w, o, r, cost, oe, credits):
    charge = charge_compute(
        input_tokens=i,
        output_tokens=o,
        cached_input=c,
        cache_write=w,
        reasoning=r,
        price=PARTS,
        credits_per_usd=THOUSAND,
    )
    assert (charge.cost_usd, charge.oe_tokens, charge.credits) == (Decimal(cost), oe, Decimal(credits))


def test_unset_part_rates_are_the_input_and_output_rates():
    with_parts = charge_compute(
        input_tokens=1000,
        output_tokens=500,
        cached_input=600,
        cache_write=100,
        reasoning=200,
        price=DEEPSEEK,
        credits_per_usd=THOUSAND,
    )
    plain = charge_compute(input_tokens=1000, output_tokens=500, price=DEEPSEEK, credits_per_usd=THOUSAND)
    assert with_parts == plain and plain.cost_usd == Decimal("0.000725")


def test_ceiling_is_the_dearest_input_and_output_rate():
    assert PARTS.ceiling() == Price(Decimal("2.50"), Decimal("10.00"))
    dear_reasoning = Price(Decimal("1"), Decimal("4"), 7, Decimal("0.1"), Decimal("0.9"), Decimal("6"))
    assert dear_reasoning.ceiling() == Price(Decimal("1"), Decimal("6"), 7)


def test_worst_price_covers_every_price_on_every_token():
    worst = price_worst([Price(Decimal("1"), Decimal("4"), 3), PARTS, Price(Decimal("2.2"), Decimal("3"))])
    assert worst == Price(Decimal("2.50"), Decimal("10.00"), 3)
    for price in (PARTS, DEEPSEEK):
        for parts in ({"cache_write": 900}, {"reasoning": 400}, {}):
            actual = charge_compute(
                input_tokens=1000, output_tokens=500, price=price, credits_per_usd=THOUSAND, **parts
            )
            held = charge_compute(
                input_tokens=1000,
                output_tokens=500,
                price=price_worst([price, DEEPSEEK]),
                credits_per_usd=THOUSAND,
            )
            assert actual.credits <= held.credits
