"""The load generator: closed-loop clients, one thread and one keep-alive connection each, posting
turns for a fixed time. Light on purpose (it shares the cores with the server): no Django, and the
bench runs it in a subprocess of its own (``python -m tools.bench.load`` reads its plan as JSON on
stdin and writes its figures as JSON on stdout).

Throughput counts the calls completed inside the measured window (after the warm-up); latencies
are those of the calls started inside it (a call queued behind a worker's start-up during the
warm-up is not one); errors count every failed call, warm-up included.
"""

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench.calls import FLOOR_PATH

ERROR_SAMPLES = 5
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    error: str  # empty when the call succeeded (2xx)


def _client_run(plan: dict[str, Any], client: dict[str, Any], stop_at: float, calls: list[Call]) -> None:
    conn = http.client.HTTPConnection(plan["host"], plan["port"], timeout=plan.get("timeout", 60))
    n = 0
    while time.perf_counter() < stop_at:
        n += 1
        body = client["body"].replace("{n}", str(n))
        started = time.perf_counter()
        try:
            conn.request("POST", client["path"], body=body, headers=client["headers"])
            response = conn.getresponse()
            content = response.read()
            error = "" if 200 <= response.status < 300 else f"{response.status} {content[:200]!r}"
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            error = f"{type(exc).__name__}: {exc}"
        calls.append(Call(started, time.perf_counter(), error))
    conn.close()


def load_run(plan: dict[str, Any]) -> dict[str, Any]:
    """``plan``: host, port, warmup and duration (seconds), and clients: each a path, headers and a
    body (``{n}`` in it becomes the call's number, so no two bodies of a client are the same)."""
    begin = time.perf_counter()
    window_start = begin + plan["warmup"]
    window_end = window_start + plan["duration"]
    per_client: list[list[Call]] = [[] for _ in plan["clients"]]
    threads = [
        threading.Thread(target=_client_run, args=(plan, client, window_end, calls), daemon=True)
        for client, calls in zip(plan["clients"], per_client, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = [call for client_calls in per_client for call in client_calls]
    return _figures(calls, window_start, window_end, len(threads))


def _figures(calls: list[Call], window_start: float, window_end: float, clients: int) -> dict[str, Any]:
    errors = [call.error for call in calls if call.error]
    succeeded = [call for call in calls if not call.error]
    completed = sum(1 for call in succeeded if window_start <= call.ended <= window_end)
    ms = [(call.ended - call.started) * 1000 for call in succeeded if call.started >= window_start]
    duration = window_end - window_start
    return {
        "clients": clients,
        "duration_s": round(duration, 2),
        "calls": len(calls),
        "completed_in_window": completed,
        "per_second": round(completed / duration, 2),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(statistics.quantiles(ms, n=20)[-1], 1) if len(ms) > 1 else None,
        "max_ms": round(max(ms), 1) if ms else None,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:ERROR_SAMPLES],
    }


def rounds_merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's figures over its rounds: throughput over the whole measured time, latencies as
    the rounds' means, every error."""
    duration = sum(r["duration_s"] for r in rounds)
    completed = sum(r["completed_in_window"] for r in rounds)

    def mean(name: str) -> float | None:
        values = [r[name] for r in rounds if r[name] is not None]
        return round(statistics.fmean(values), 1) if values else None

    return {
        "clients": rounds[0]["clients"],
        "rounds": len(rounds),
        "duration_s": round(duration, 2),
        "calls": sum(r["calls"] for r in rounds),
        "completed_in_window": completed,
        "per_second": round(completed / duration, 2) if duration else 0.0,
        "per_second_by_round": [r["per_second"] for r in rounds],
        "p50_ms": mean("p50_ms"),
        "p95_ms": mean("p95_ms"),
        "max_ms": max((r["max_ms"] for r in rounds if r["max_ms"] is not None), default=None),
        "errors": sum(r["errors"] for r in rounds),
        "error_samples": sorted({s for r in rounds for s in r["error_samples"]})[:ERROR_SAMPLES],
    }


def load_plan(
    port: int, clients: list, *, variant: str, sent: dict, warmup: float, duration: float
) -> dict[str, Any]:
    """What each client posts: a Pantheon manual turn in its session, or the floor replaying
    ``sent`` (a turn's LLM request) in its floor session."""
    plan_clients = []
    for client in clients:
        if variant == "turn":
            path = f"/api/v1/sessions/{client.session}/turns"
            body = json.dumps({"user_input": "@writer load turn {n}", "mode": "manual"})
            authorization = f"Bearer {client.token}"
        else:
            path = FLOOR_PATH
            body = json.dumps({"session": client.floor_session, "request": sent})
            authorization = f"Token {client.token}"
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        plan_clients.append({"path": path, "headers": headers, "body": body})
    return {
        "host": "127.0.0.1",
        "port": port,
        "warmup": warmup,
        "duration": duration,
        "clients": plan_clients,
    }


def load_measure(plan: dict[str, Any]) -> dict[str, Any]:
    """Runs the plan in a subprocess of its own (so its threads never wait on this process's lock)."""
    limit = plan["warmup"] + plan["duration"] + plan.get("timeout", 60) + 30
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.load"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=limit,
        check=True,
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    json.dump(load_run(json.load(sys.stdin)), sys.stdout)
