"""The load generator counts what completed in its window and every failure."""

import json

import pytest

from orchestration.testing.fake_server import FakeLlmServer
from tools.bench.load import load_measure, load_run

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "call {n}"}]})


def _plan(server: FakeLlmServer, path: str, clients: int = 2) -> dict:
    client = {"path": path, "headers": {"Content-Type": "application/json"}, "body": BODY}
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "warmup": 0.2,
        "duration": 0.5,
        "clients": [client] * clients,
    }


def test_load_run_counts_completed_calls_and_numbers_each_body():
    with FakeLlmServer(latency_ms=20) as server:
        figures = load_run(_plan(server, "/v1/chat/completions"))
        contents = [r.messages[0]["content"] for r in server.requests]

    assert figures["errors"] == 0
    assert 0 < figures["completed_in_window"] <= figures["calls"]
    assert figures["per_second"] == round(figures["completed_in_window"] / 0.5, 2)
    assert figures["p50_ms"] >= 20
    assert {"call 1", "call 2"} <= set(contents) and "call {n}" not in contents


def test_load_run_counts_every_non_2xx_as_an_error():
    with FakeLlmServer() as server:
        figures = load_run(_plan(server, "/nowhere", clients=1))

    assert figures["errors"] == figures["calls"] > 0
    assert figures["completed_in_window"] == 0
    assert figures["error_samples"][0].startswith("404 ")


@pytest.mark.integration
def test_load_measure_runs_the_plan_in_a_subprocess():
    with FakeLlmServer() as server:
        figures = load_measure(_plan(server, "/v1/chat/completions", clients=1))
        calls = len(server.requests)

    assert figures["errors"] == 0
    assert figures["calls"] == calls > 0


def test_rounds_merge_counts_throughput_over_the_whole_measured_time():
    from tools.bench.load import rounds_merge

    def round_(completed, p95, errors=0):
        return {
            "clients": 4,
            "duration_s": 10.0,
            "calls": completed + 2,
            "completed_in_window": completed,
            "per_second": completed / 10,
            "p50_ms": 200.0,
            "p95_ms": p95,
            "max_ms": p95 + 50,
            "errors": errors,
            "error_samples": ["500 boom"] if errors else [],
        }

    merged = rounds_merge([round_(600, 300.0), round_(400, 500.0, errors=1)])
    assert merged["per_second"] == 50.0 and merged["per_second_by_round"] == [60.0, 40.0]
    assert (merged["duration_s"], merged["completed_in_window"], merged["calls"]) == (20.0, 1000, 1004)
    assert (merged["p95_ms"], merged["max_ms"], merged["errors"]) == (400.0, 550.0, 1)
    assert merged["error_samples"] == ["500 boom"]
