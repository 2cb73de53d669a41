"""The capacity scenario's figures, from a burst's raw samples (the bursts themselves run in
``make bench`` only)."""

from tools.bench import stack
from tools.bench.capacity import THREAD_BOUND, Burst, burst_figures, capacity_lines, percentile


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
