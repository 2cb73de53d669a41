"""The capacity scenario's figures, from a burst's raw samples (the bursts themselves run in
``make bench`` only)."""

from tools.bench import stack
from tools.bench.capacity import (
    THREAD_BOUND,
    Burst,
    burst_figures,
    capacity_goals,
    capacity_lines,
    percentile,
)


def test_percentile_is_nearest_rank():
    assert percentile([], 0.99) is None
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.99) == 99


def test_burst_figures_count_only_answered_turns_and_the_probes():
    raw = {
        "turns": [
            {"status": 201, "first": 0.2, "ended": 10.5, "error": ""},
            {"status": 201, "first": 0.4, "ended": 11.0, "error": ""},
            {"status": 503, "first": None, "ended": 0.05, "error": "503 server_busy"},
            {"status": 0, "first": None, "ended": 60.0, "error": "TimeoutError: timed out"},
        ],
        "health": [{"ms": 5, "status": 200}, {"ms": 900, "status": 200}, {"ms": 1, "status": 503}],
        "lists": [{"ms": 20, "status": 200}],
        "connections": [3, 17, 12],
    }
    figures = burst_figures(Burst("streamed", 4, 1, stream=True), raw, latency_s=10)

    assert (figures["turns"], figures["completed"], figures["ideal_s"]) == (4, 2, 10)
    assert figures["last_end_s"] == 11.0 and figures["first_byte_p95_s"] == 0.4
    assert (figures["health_p99_ms"], figures["health_failed"], figures["list_p99_ms"]) == (900, 1, 20)
    assert figures["connections_peak"] == 17
    assert figures["errors"] == {"503 server_busy": 1, "TimeoutError: timed out": 1}
    lines = capacity_lines(
        {"latency_ms": 10000, "timeout_s": 60, "configs": {"shipped": {"bursts": {"s": figures}}}}
    )
    assert any("| shipped | s | 2/4 | 11.0 (10) |" in line for line in lines)


def test_the_thread_bound_configuration_is_gthread():
    assert stack.gunicorn_settings(THREAD_BOUND)["worker_class"] == "gthread"
    assert stack.gunicorn_settings()["worker_class"] == "gevent"


def test_the_gevent_workers_accept_batch_is_reported():
    assert stack.gunicorn_settings()["accept_batch"] == 32
    assert stack.gunicorn_settings({"WEB_ACCEPT_BATCH": "8"})["accept_batch"] == 8
    assert "accept_batch" not in stack.gunicorn_settings(THREAD_BOUND)


def _figures(turns=500, completed=500, ideal=10.0, end=12.8, first=None, health=887, lists=971, peak=18):
    return {
        "turns": turns,
        "completed": completed,
        "ideal_s": ideal,
        "last_end_s": end,
        "first_byte_p95_s": first,
        "health_p99_ms": health,
        "list_p99_ms": lists,
        "connections_peak": peak,
    }


def test_the_goals_are_judged_from_the_figures_of_the_shipped_bursts():
    lines = capacity_goals(
        {
            "plain": _figures(),
            "streamed": _figures(end=13.9, first=2.9, health=475, lists=502),
            "roundtable": _figures(
                turns=200, completed=200, ideal=30.0, end=31.5, health=39, lists=24, peak=17
            ),
        }
    )
    assert lines == [
        "goal: every turn of every burst completes: met "
        "(plain 500/500, streamed 500/500, roundtable 200/200)",
        "goal: the plain burst ends within 1.5 × 10 s: met (12.8 s)",
        "goal: the streamed burst ends within 1.5 × 10 s: met (13.9 s)",
        "goal: a stream's first byte within 1 s at p95: NOT met (2.9 s)",
        "goal: the roundtable burst ends within 1.5 × 30 s: met (31.5 s)",
        "goal: /health within 1,000 ms at p99 in every burst: met (worst 887 ms)",
        "goal: GET list within 1,000 ms at p99 in every burst: met (worst 971 ms)",
        "goal: PostgreSQL connections at most 40: met (peak 18)",
    ]


def test_a_goal_missed_by_any_burst_is_not_met():
    lines = capacity_goals(
        {
            "plain": _figures(completed=499, end=15.1, health=1001),
            "streamed": _figures(completed=0, end=None, first=None, peak=41),
            "roundtable": {"failed": "gunicorn did not start"},
        }
    )
    assert lines[0] == (
        "goal: every turn of every burst completes: NOT met "
        "(plain 499/500, streamed 0/500, roundtable not run)"
    )
    assert "goal: the plain burst ends within 1.5 × 10 s: NOT met (15.1 s)" in lines
    assert "goal: the streamed burst ends within 1.5 × 10 s: NOT met (- s)" in lines
    assert "goal: a stream's first byte within 1 s at p95: NOT met (- s)" in lines
    assert "goal: /health within 1,000 ms at p99 in every burst: NOT met (worst 1,001 ms)" in lines
    assert lines[-1] == "goal: PostgreSQL connections at most 40: NOT met (peak 41)"
    assert capacity_goals({"plain": {"failed": "x"}}) == ["goal: the bursts: NOT met (none ran)"]
