"""The capacity scenario (issue 16): bursts of turns while the model thinks for ``latency`` seconds,
against the shipped server (``gunicorn.conf.py``: gevent workers, a connection pool per worker) and,
in the same run, today's thread-bound one (gthread, a persistent connection per thread), so the gain
is read in one run.

Each burst — plain turns, streamed turns, three-agent roundtables — sends every turn at the same
moment from a client of its own (one user each), with a fresh server (a thread-bound server's queue
of timed-out turns must not spill into the next burst). Figures per burst: turns completed (2xx),
the burst's end against the ideal (the provider's latency × agents), the first byte's p95 for
streams, ``/health`` and ``GET /rooms`` p99 during the burst, and the database's connections at peak.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench import stack
from tools.bench.burst import burst_measure
from tools.bench.calls import BenchError
from tools.bench.report import goal_line

# The thread-bound configuration as it was shipped before: gthread workers and threads, a
# persistent connection per thread.
THREAD_BOUND = {"WEB_WORKER_CLASS": "gthread", "DATABASE_POOL_MAX_SIZE": "0", "DATABASE_CONN_MAX_AGE": "60"}
CONFIGS = {"shipped": {}, "thread-bound": THREAD_BOUND}
# Three workers warming up on a loaded 2-core machine can take a while.
STARTUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class Burst:
    name: str
    count: int
    agents: int
    stream: bool = False


def bursts(plain: int, streamed: int, roundtables: int) -> list[Burst]:
    return [
        Burst("plain", plain, 1),
        Burst("streamed", streamed, 1, stream=True),
        Burst("roundtable", roundtables, 3),
    ]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _client_request(burst: Burst, client: Any, n: int) -> dict[str, Any]:
    session = {"plain": client.plain_session, "streamed": client.stream_session}.get(
        burst.name, client.roundtable_session
    )
    mode = "roundtable" if burst.agents > 1 else "manual"
    text = "@writer capacity turn" if mode == "manual" else "A roundtable on capacity"
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"}
    if burst.stream:
        headers["Accept"] = "text/event-stream"
    return {
        "path": f"/api/v1/sessions/{session}/turns",
        "headers": headers,
        "body": json.dumps({"user_input": f"{text} {n}", "mode": mode}),
        "stream": burst.stream,
    }


def burst_figures(burst: Burst, raw: dict[str, Any], latency_s: float) -> dict[str, Any]:
    turns = raw["turns"]
    done = [t for t in turns if 200 <= t["status"] < 300 and not t["error"]]
    ideal = latency_s * burst.agents
    errors: dict[str, int] = {}
    for t in turns:
        if t["error"]:
            key = t["error"][:60]
            errors[key] = errors.get(key, 0) + 1
    return {
        "turns": len(turns),
        "completed": len(done),
        "ideal_s": ideal,
        "last_end_s": max((t["ended"] for t in done), default=None),
        "end_p50_s": percentile([t["ended"] for t in done], 0.5),
        "first_byte_p95_s": percentile([t["first"] for t in done if t["first"] is not None], 0.95)
        if burst.stream
        else None,
        "health_p99_ms": percentile([h["ms"] for h in raw["health"]], 0.99),
        "health_failed": sum(1 for h in raw["health"] if h["status"] != 200),
        "list_p99_ms": percentile([h["ms"] for h in raw["lists"]], 0.99),
        "connections_peak": max(raw["connections"], default=None),
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:4]),
    }


def capacity_run(
    *,
    env: dict[str, str],
    fake: Any,
    database_url: str,
    counts: tuple[int, int, int],
    latency_ms: float,
    timeout: float,
    log_dir: Path,
    configs: dict[str, dict[str, str]] = CONFIGS,
) -> dict[str, Any]:
    """Every burst against every configuration; fixtures made here (fresh users per configuration)."""
    import environ

    from tools.bench import fixtures

    plan_base = {
        "host": "127.0.0.1",
        "timeout": timeout,
        "database_url": database_url,
        "database_name": environ.Env.db_url_config(database_url)["NAME"],
    }
    results: dict[str, Any] = {"latency_ms": latency_ms, "timeout_s": timeout, "configs": {}}
    fake.set_latency(latency_ms)
    try:
        for config, overrides in configs.items():
            clients = fixtures.capacity_clients(max(counts[:2]), counts[2])
            figures = {}
            for burst in bursts(*counts):
                if not burst.count:
                    continue
                log = log_dir / f"bench-capacity-{config}-{burst.name}.log"
                server = stack.Gunicorn({**env, **overrides}, log)
                try:
                    server.start(timeout=STARTUP_TIMEOUT)
                    plan = {
                        **plan_base,
                        "port": server.port,
                        "clients": [
                            _client_request(burst, c, n) for n, c in enumerate(clients[: burst.count])
                        ],
                        "list_path": "/api/v1/rooms",
                        "list_headers": {"Authorization": f"Bearer {clients[-1].token}"},
                    }
                    raw = burst_measure(plan)
                    (log_dir / f"bench-capacity-{config}-{burst.name}.json").write_text(json.dumps(raw))
                    figures[burst.name] = burst_figures(burst, raw, latency_ms / 1000)
                except BenchError as exc:  # a server that would not start on a busy machine: said, not fatal
                    figures[burst.name] = {"failed": str(exc)}
                finally:
                    server.stop()
                fake.reset()
            results["configs"][config] = {"gunicorn": stack.gunicorn_settings(overrides), "bursts": figures}
    finally:
        fake.set_latency(0)
        fake.reset()
    return results


def capacity_lines(capacity: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Capacity: provider at {capacity['latency_ms'] / 1000:g} s, every turn of a burst at once, "
        f"client timeout {capacity['timeout_s']:g} s",
        "| config | burst | completed | last ends s (ideal) | p50 s | first byte p95 s | /health p99 ms "
        "| GET list p99 ms | PG conns peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config, result in capacity["configs"].items():
        for name, f in result["bursts"].items():
            if "failed" in f:
                lines.append(f"| {config} | {name} | not run: {f['failed']} |")
                continue
            lines.append(
                f"| {config} | {name} | {f['completed']}/{f['turns']} | {_n(f['last_end_s'])} "
                f"({f['ideal_s']:g}) | {_n(f['end_p50_s'])} | {_n(f['first_byte_p95_s'])} "
                f"| {_n(f['health_p99_ms'], 0)} | {_n(f['list_p99_ms'], 0)} | {f['connections_peak']} |"
            )
            if f["errors"]:
                lines.append(f"|  |  errors: {f['errors']} |")
    if "shipped" in capacity["configs"]:
        lines += capacity_goals(capacity["configs"]["shipped"]["bursts"])
    return lines


# The goals of issue 16, for the shipped configuration (at whatever burst sizes were run).
END_WITHIN_LATENCY = 1.5
FIRST_BYTE_P95_S = 1.0
PROBE_P99_MS = 1000
CONNECTIONS_AT_MOST = 40


def capacity_goals(bursts: dict[str, dict[str, Any]]) -> list[str]:
    """One line per goal, met or not, with the figure that decides it."""
    ran = {name: f for name, f in bursts.items() if "failed" not in f}
    if not ran:
        return [goal_line("the bursts", False, "none ran")]
    lines = [
        goal_line(
            "every turn of every burst completes",
            len(ran) == len(bursts) and all(f["completed"] == f["turns"] for f in ran.values()),
            ", ".join(
                f"{name} not run" if "failed" in f else f"{name} {f['completed']}/{f['turns']}"
                for name, f in bursts.items()
            ),
        )
    ]
    for name, f in ran.items():
        end = f["last_end_s"]
        lines.append(
            goal_line(
                f"the {name} burst ends within {END_WITHIN_LATENCY:g} × {f['ideal_s']:g} s",
                _at_most(end, END_WITHIN_LATENCY * f["ideal_s"]),
                f"{_n(end)} s",
            )
        )
        if f["first_byte_p95_s"] is not None or name == "streamed":
            first = f["first_byte_p95_s"]
            lines.append(
                goal_line(
                    f"a stream's first byte within {FIRST_BYTE_P95_S:g} s at p95",
                    _at_most(first, FIRST_BYTE_P95_S),
                    f"{_n(first)} s",
                )
            )
    for probe, key in (("/health", "health_p99_ms"), ("GET list", "list_p99_ms")):
        worst = _worst(ran, key)
        lines.append(
            goal_line(
                f"{probe} within {PROBE_P99_MS:,} ms at p99 in every burst",
                _at_most(worst, PROBE_P99_MS),
                f"worst {_n(worst, 0)} ms",
            )
        )
    peak = _worst(ran, "connections_peak")
    lines.append(
        goal_line(
            f"PostgreSQL connections at most {CONNECTIONS_AT_MOST}",
            _at_most(peak, CONNECTIONS_AT_MOST),
            f"peak {peak}",
        )
    )
    return lines


def _worst(bursts: dict[str, dict[str, Any]], key: str) -> float | None:
    return max((f[key] for f in bursts.values() if f[key] is not None), default=None)


def _at_most(figure: float | None, bound: float) -> bool:
    """A figure missing (nothing completed) never meets its goal."""
    return figure is not None and figure <= bound


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
