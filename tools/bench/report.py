"""The run's figures: ``var/bench.json`` (every figure and sample), a compact table, the goals of
issue 10 met or not, and the exit status (non-zero when the queries per turn change with the
session's length or when any call under load failed)."""

import json
from pathlib import Path
from typing import Any

GOAL_ADDED_RATIO = 1.5  # a turn adds at most 1.5 × what the floor adds
GOAL_QUERIES = 8  # SQL statements per turn, one agent or three
GOAL_ROUNDTABLE = 1.5  # a three-agent roundtable adds at most 1.5 × a single-agent turn
GOAL_LOAD_RATIO = 0.8  # Pantheon's turns/s under load at least 0.8 × the floor's


def load_figures(turn: dict, floor: dict, *, gunicorn: dict, latency_ms: float) -> dict[str, Any]:
    # Requests served at once: threads (gthread), or connections (gevent: a greenlet each).
    per_worker = "worker_connections" if gunicorn.get("worker_class") == "gevent" else "threads"
    threads = int(gunicorn.get("workers", 1)) * int(gunicorn.get(per_worker, 1))
    ideal = min(threads, turn["clients"]) / (latency_ms / 1000) if latency_ms > 0 else None
    return {
        "latency_ms": latency_ms,
        "threads": threads,
        "ideal_per_second": round(ideal, 1) if ideal else None,
        "turn": turn,
        "floor": floor,
        "ratio": round(turn["per_second"] / floor["per_second"], 2) if floor["per_second"] else None,
    }


def goals(report: dict[str, Any]) -> list[tuple[str, bool, str]]:
    results = report["latency"]["results"]
    worst_ratio = max((r["added_ratio"] or float("inf")) for r in results)
    queries = [r["turn"]["queries"] for r in results] + [results[0]["roundtable"]["queries"]]
    table = results[0]["roundtable_vs_single"]
    load_ratio = report["load"]["ratio"]
    return [
        (
            f"turn adds ≤ {GOAL_ADDED_RATIO} × the floor's",
            worst_ratio <= GOAL_ADDED_RATIO,
            f"worst {worst_ratio}",
        ),
        (f"≤ {GOAL_QUERIES} queries per turn", max(queries) <= GOAL_QUERIES, f"{max(queries):g}"),
        (
            f"roundtable adds ≤ {GOAL_ROUNDTABLE} × a single-agent turn",
            table is not None and table <= GOAL_ROUNDTABLE,
            f"{table}",
        ),
        (
            f"load ≥ {GOAL_LOAD_RATIO} × the floor's turns/s, 0 errors",
            load_ratio is not None and load_ratio >= GOAL_LOAD_RATIO and not _load_errors(report),
            f"{load_ratio}",
        ),
    ]


def _load_errors(report: dict[str, Any]) -> int:
    return report["load"]["turn"]["errors"] + report["load"]["floor"]["errors"]


def _queries_by_length(report: dict[str, Any]) -> set[float]:
    return {r["turn"]["queries"] for r in report["latency"]["results"]}


def exit_status(report: dict[str, Any]) -> int:
    return 1 if len(_queries_by_length(report)) > 1 or _load_errors(report) else 0


def report_write(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


def _queries(series: dict) -> str:
    low, high = series["queries_min"], series["queries_max"]
    return f"{series['queries']:g}" if low == high else f"{series['queries']:g} ({low}–{high})"


def _run_lines(run: dict[str, Any]) -> list[str]:
    g = run["gunicorn"]
    return [
        f"Pantheon bench · {run['cpus']} cores (load average {run['load_average_start']:.2f} at start, "
        f"{run['load_average_end']:.2f} at end) · gunicorn {_serving(g)}, ready in {run['startup_s']:.1f} s",
    ]


def _latency_lines(run: dict[str, Any], latency: dict[str, Any]) -> list[str]:
    lines = [
        f"latency: fake LLM at 0 ms, {run['turns']} calls of each variant per length, medians in ms",
        f"{'prior':>6} {'prompt':>6} {'direct':>7} {'floor':>7} {'turn':>7} {'floor+':>7} {'turn+':>7}"
        f" {'ratio':>6}  {'queries turn/floor':<18} {'turn db/app':>11}",
    ]
    for r in latency["results"]:
        server = r["turn"]["server_ms"]
        lines.append(
            f"{r['prior_turns']:>6} {r['prompt_tokens']:>6} {r['direct']['median_ms']:>7.1f}"
            f" {r['floor']['median_ms']:>7.1f} {r['turn']['median_ms']:>7.1f} {r['floor_added_ms']:>7.1f}"
            f" {r['turn_added_ms']:>7.1f} {r['added_ratio'] or float('nan'):>6.2f}"
            f"  {_queries(r['turn']) + ' / ' + _queries(r['floor']):<18}"
            f" {server['db']:>5.1f}/{server['app']:<5.1f}"
        )
    first, cold = latency["results"][0], latency["cold"]
    return [
        *lines,
        f"roundtable (3 agents): {first['roundtable']['median_ms']:.1f} − 3 direct calls "
        f"{first['roundtable_direct']['median_ms']:.1f} = +{first['roundtable_added_ms']:.1f} ms, "
        f"{first['roundtable_vs_single']} × a single-agent turn's +{first['turn_added_ms']:.1f}; "
        f"{_queries(first['roundtable'])} queries",
        f"cold: the first request after start (a turn) {cold['turn_ms']:.1f} ms, "
        f"{cold['cold_vs_warm']} × the warm median {cold['warm_turn_ms']:.1f}",
    ]


def _serving(g: dict[str, Any]) -> str:
    if g.get("worker_class") == "gevent":
        batch = f", accepting {g['accept_batch']} at a time" if "accept_batch" in g else ""
        return f"{g['workers']} gevent workers × {g.get('worker_connections', '?')} connections{batch}"
    return f"{g['workers']} × {g['threads']} {g['worker_class']}"


def _load_lines(load: dict[str, Any]) -> list[str]:
    clients, seconds = load["turn"]["clients"], load["latency_ms"] / 1000
    lines = [
        f"load: fake LLM at {load['latency_ms']:g} ms, {clients} clients (a user and a session each), "
        f"{load['turn']['duration_s']:g} s each after a warm-up",
        f"ideal {load['ideal_per_second']} turns/s = min({load['threads']} at once, {clients} clients)"
        f" ÷ {seconds:g} s",
        f"{'':>10} {'turns/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}",
    ]
    for name, label in (("turn", "pantheon"), ("floor", "floor")):
        f = load[name]
        lines.append(
            f"{label:>10} {f['per_second']:>8.1f} {f['p50_ms'] or 0:>8.1f} {f['p95_ms'] or 0:>8.1f}"
            f" {f['errors']:>7}"
        )
        lines += [f"{'':>12}{sample}" for sample in f["error_samples"]]
    return [*lines, f"pantheon / floor: {load['ratio']} (bar ≥ {GOAL_LOAD_RATIO})"]


def goal_line(name: str, met: bool, detail: str) -> str:
    """``goal: NAME: met (DETAIL)`` or ``… NOT met …``: how every scenario states a goal."""
    return f"goal: {name}: {'met' if met else 'NOT met'} ({detail})"


def _verdict_lines(report: dict[str, Any]) -> list[str]:
    lines = [goal_line(name, met, detail) for name, met, detail in goals(report)]
    by_length = sorted(_queries_by_length(report))
    if len(by_length) > 1:
        lines.append(f"FAIL: queries per turn vary with the session's length: {by_length}")
    if _load_errors(report):
        lines.append(f"FAIL: {_load_errors(report)} calls failed under load")
    return lines


def table_lines(report: dict[str, Any]) -> list[str]:
    return [
        *_run_lines(report["run"]),
        *_latency_lines(report["run"], report["latency"]),
        *_load_lines(report["load"]),
        *_verdict_lines(report),
    ]
