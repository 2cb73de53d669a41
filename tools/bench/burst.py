"""A burst for the capacity scenario: every client sends one turn at the same moment (a thread and a
connection each), while probes ask ``/health`` and a list endpoint every 100 ms and a sampler counts
the database's connections. No Django here (it shares the cores with the server): the bench runs it
in subprocesses (``python -m tools.bench.burst`` reads its plan as JSON on stdin, writes its figures
as JSON on stdout). The probes run in a process of their own (``--probes``, until its stdin closes),
as a load balancer would: in the clients' process they would wait for its interpreter behind the
hundreds of client threads, and measure the bench rather than the server.

Per turn: its status, when it ended and when its first byte came (for a stream, ``: turn accepted``
or the first event), from the burst's start; errors are kept as text.
"""

import http.client
import json
import sys
import threading
import time
from typing import Any

PROBE_INTERVAL = 0.1


def _turn(plan: dict, client: dict, start: threading.Event, clock: dict, out: list) -> None:
    conn = http.client.HTTPConnection(plan["host"], plan["port"], timeout=plan["timeout"])
    start.wait()
    began = clock["began"]
    status, first, error = 0, None, ""
    try:
        conn.request("POST", client["path"], body=client["body"], headers=client["headers"])
        response = conn.getresponse()
        status = response.status
        first_chunk = response.read(1) if client.get("stream") else b""
        first = time.perf_counter() - began
        rest = response.read()
        if not 200 <= status < 300:
            error = f"{status} {(first_chunk + rest)[:160]!r}"
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        conn.close()
    out.append({"status": status, "first": first, "ended": time.perf_counter() - began, "error": error})


def _probe(plan: dict, path: str, headers: dict, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        conn = http.client.HTTPConnection(plan["host"], plan["port"], timeout=plan["timeout"])
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            out.append(
                {
                    "ms": (time.perf_counter() - started) * 1000,
                    "status": response.status,
                    "at": time.time(),
                    "server_timing": response.getheader("Server-Timing", ""),
                }
            )
        except (OSError, http.client.HTTPException) as exc:
            out.append({"ms": (time.perf_counter() - started) * 1000, "status": 0, "error": str(exc)[:100]})
        finally:
            conn.close()
        stop.wait(PROBE_INTERVAL)


def _connections(plan: dict, stop: threading.Event, out: list) -> None:
    import psycopg

    with psycopg.connect(plan["database_url"], autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [plan["database_name"]],
            ).fetchone()
            out.append(row[0])
            stop.wait(0.2)


def burst_run(plan: dict[str, Any]) -> dict[str, Any]:
    start = threading.Event()
    turns: list[dict] = []
    clock: dict[str, float] = {}
    threads = [threading.Thread(target=_turn, args=(plan, c, start, clock, turns)) for c in plan["clients"]]
    for thread in threads:
        thread.start()
    clock["began"] = time.perf_counter()
    clock["began_at"] = time.time()
    start.set()
    for thread in threads:
        thread.join()
    return {"turns": turns, "began_at": clock["began_at"]}


def probes_run(plan: dict[str, Any], stop: threading.Event) -> dict[str, Any]:
    health: list[dict] = []
    lists: list[dict] = []
    connections: list[int] = []
    helpers = [
        threading.Thread(target=_probe, args=(plan, "/api/v1/health", {}, stop, health)),
        threading.Thread(target=_probe, args=(plan, plan["list_path"], plan["list_headers"], stop, lists)),
        threading.Thread(target=_connections, args=(plan, stop, connections)),
    ]
    for helper in helpers:
        helper.start()
    for helper in helpers:
        helper.join()
    return {"health": health, "lists": lists, "connections": connections}


def burst_measure(plan: dict[str, Any]) -> dict[str, Any]:
    """The turns in one subprocess, the probes in another, from just before the turns to their end."""
    import subprocess

    from tools.bench.load import ROOT

    command = [sys.executable, "-m", "tools.bench.burst"]
    probes = subprocess.Popen(
        [*command, "--probes"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        probes.stdin.write(json.dumps(plan) + "\n")
        probes.stdin.flush()
        done = subprocess.run(
            command, input=json.dumps(plan), capture_output=True, text=True, cwd=ROOT, check=True
        )
    finally:
        probes.stdin.close()  # the probes' end
    probed = json.loads(probes.stdout.read())
    probes.wait(timeout=60)
    return {**json.loads(done.stdout), **probed}


def _probes_main() -> None:
    plan = json.loads(sys.stdin.readline())
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    json.dump(probes_run(plan, stop), sys.stdout)


if __name__ == "__main__":
    if sys.argv[1:] == ["--probes"]:
        _probes_main()
    else:
        json.dump(burst_run(json.load(sys.stdin)), sys.stdout)
