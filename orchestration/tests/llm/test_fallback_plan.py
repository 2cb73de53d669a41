"""The order a call tries an alias's deployments in (``orchestration.llm.fallback.attempts_plan``):
positions first, a weighted random order within a position, weight 0 drained."""

from collections import Counter
from dataclasses import dataclass

import pytest

from orchestration.llm.fallback import attempts_plan

DRAWS = 4000


@dataclass(frozen=True)
class Route:
    name: str
    position: int = 0
    weight: int = 1


@pytest.fixture(autouse=True)
def _attempts(settings):
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 5


def firsts(routes: list[Route]) -> Counter:
    return Counter(attempts_plan(routes)[0].name for _ in range(DRAWS))


def test_positions_come_in_order_whatever_the_weights():
    routes = [Route("late", position=2, weight=50), Route("early", position=0), Route("middle", position=1)]
    assert {tuple(r.name for r in attempts_plan(routes)) for _ in range(200)} == {("early", "middle", "late")}


def test_equal_positions_share_the_first_attempt_by_weight():
    counts = firsts([Route("light", weight=1), Route("heavy", weight=9)])
    assert 0.86 < counts["heavy"] / DRAWS < 0.94, counts  # 90 % expected; 4000 draws: σ ≈ 0.5 %
    counts = firsts([Route("a", weight=3), Route("b", weight=3)])
    assert 0.45 < counts["a"] / DRAWS < 0.55, counts


def test_weight_zero_is_drained_tried_only_after_its_positions_weighted_ones():
    routes = [Route("drained", weight=0), Route("live", weight=1), Route("next", position=1)]
    plans = {tuple(r.name for r in attempts_plan(routes)) for _ in range(500)}
    assert plans == {("live", "drained", "next")}
    assert attempts_plan([Route("alone", weight=0)])[0].name == "alone"  # still served when it is all


def test_the_plan_is_cut_at_the_attempts_bound(settings):
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 2
    routes = [Route(f"d{i}", position=i) for i in range(4)]
    assert [r.name for r in attempts_plan(routes)] == ["d0", "d1"]
