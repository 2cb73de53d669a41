"""The bench's server: production gunicorn settings, Pantheon's API and the floor side by side, and
ready only once every worker has loaded the app."""

import http.client

import pytest

from tools.bench import stack
from tools.bench.calls import FLOOR_PATH

pytestmark = pytest.mark.integration


def test_bench_server_serves_pantheon_and_the_floor_once_every_worker_is_ready(tmp_path):
    env = stack.environment(
        database_url="postgres://postgres@127.0.0.1:5432/pantheon_bench_unused",
        broker_url="redis://127.0.0.1:6379/15",
        llm_base_url="http://127.0.0.1:9/v1",
    )
    server = stack.Gunicorn(env, tmp_path / "gunicorn.log")
    try:
        server.start()
        ready = server.workers_ready()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        statuses = {}
        for method, path in (("POST", FLOOR_PATH), ("GET", "/api/v1/auth/me")):
            conn.request(method, path)
            response = conn.getresponse()
            response.read()
            statuses[path] = response.status
        conn.close()
    finally:
        server.stop()

    assert ready == server.workers == stack.gunicorn_settings()["workers"]
    assert statuses == {FLOOR_PATH: 401, "/api/v1/auth/me": 401}  # both routed, neither open
    assert "Using worker: gevent" in (tmp_path / "gunicorn.log").read_text()  # the shipped class
