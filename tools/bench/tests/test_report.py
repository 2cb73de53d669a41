"""What ``make bench`` concludes from its figures: the exit status, the goals, the ideal."""

from tools.bench.report import _serving, exit_status, goals, load_figures, table_lines


def _series(ms: float, queries: int | None = None) -> dict:
    out = {"median_ms": ms, "samples_ms": [ms]}
    if queries is not None:
        out.update(
            queries=queries, queries_min=queries, queries_max=queries, server_ms={"db": 1.0, "app": 2.0}
        )
    return out


def _length(prior: int, *, turn_queries: int = 6, turn_ms: float = 12.0) -> dict:
    return {
        "prior_turns": prior,
        "prompt_tokens": 100,
        "direct": _series(4.0),
        "floor": _series(10.0, 6),
        "turn": _series(turn_ms, turn_queries),
        "roundtable": _series(30.0, turn_queries),
        "roundtable_direct": _series(12.0),
        "floor_added_ms": 6.0,
        "turn_added_ms": turn_ms - 4.0,
        "added_ratio": round((turn_ms - 4.0) / 6.0, 2),
        "roundtable_added_ms": 1.2 * (turn_ms - 4.0),
        "roundtable_vs_single": 1.2,
    }


def _load(per_second: float, errors: int = 0) -> dict:
    return {
        "clients": 32,
        "duration_s": 15,
        "per_second": per_second,
        "p50_ms": 210.0,
        "p95_ms": 250.0,
        "errors": errors,
        "error_samples": ["409 b'conflict'"] if errors else [],
    }


def _report(lengths: list[dict], *, turn_load: dict | None = None) -> dict:
    gunicorn = {"worker_class": "gthread", "workers": 3, "threads": 8, "timeout": 300}
    return {
        "run": {
            "cpus": 2,
            "load_average_start": 0.5,
            "load_average_end": 1.5,
            "gunicorn": gunicorn,
            "startup_s": 1.0,
            "turns": 30,
        },
        "latency": {
            "cold": {"turn_ms": 20.0, "warm_turn_ms": 12.0, "cold_vs_warm": 1.67},
            "results": lengths,
        },
        "load": load_figures(turn_load or _load(100.0), _load(110.0), gunicorn=gunicorn, latency_ms=200),
    }


def test_exit_status_is_zero_when_queries_are_constant_and_nothing_failed():
    report = _report([_length(0), _length(10), _length(1000)])

    assert exit_status(report) == 0
    assert all(met for _, met, _ in goals(report))


def test_exit_status_is_one_when_queries_per_turn_change_with_the_session_length():
    report = _report([_length(0), _length(10), _length(1000, turn_queries=7)])

    assert exit_status(report) == 1
    assert any("vary with the session's length" in line for line in table_lines(report))


def test_exit_status_is_one_when_a_call_failed_under_load():
    report = _report([_length(0)], turn_load=_load(100.0, errors=3))

    assert exit_status(report) == 1
    assert "            409 b'conflict'" in table_lines(report)


def test_goals_report_a_turn_adding_more_than_one_and_a_half_floors():
    report = _report([_length(0, turn_ms=14.0)], turn_load=_load(50.0))

    verdicts = {name.split(" ")[0]: met for name, met, _ in goals(report)}
    assert verdicts == {"turn": False, "≤": True, "roundtable": True, "load": False}


def test_the_ideal_throughput_is_bounded_by_threads_not_clients():
    figures = load_figures(_load(50.0), _load(100.0), gunicorn={"workers": 3, "threads": 8}, latency_ms=200)

    assert (figures["threads"], figures["ideal_per_second"], figures["ratio"]) == (24, 120.0, 0.5)


def test_the_serving_line_names_the_gevent_workers_accept_batch():
    gevent = {"worker_class": "gevent", "workers": 2, "worker_connections": 1000, "accept_batch": 32}
    assert _serving(gevent) == "2 gevent workers × 1000 connections, accepting 32 at a time"
    assert _serving({"worker_class": "gthread", "workers": 3, "threads": 8}) == "3 × 8 gthread"
