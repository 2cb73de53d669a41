"""The database goes away while the server runs (a TCP relay between gunicorn and PostgreSQL is
stopped: every connection cut, nothing listening), then comes back. Requests meanwhile answer 503
``database_unavailable`` with ``Retry-After`` in seconds, in each endpoint's error shape — not a 500
after the pool's 30-s timeout — and the server serves again once the database is back."""

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from pantheon.testing.processes import app_env, gunicorn, http
from usage.services.tokens import api_token_issue

pytestmark = pytest.mark.integration


class Relay:
    """127.0.0.1:<port> → PostgreSQL, until ``stop()`` (which cuts every connection it carries)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> "Relay":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for sock in [listener, *sockets] if listener is not None else sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a listener's wakes its blocked accept()
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_a_database_gone_answers_503_in_seconds_and_serving_resumes_when_it_is_back(
    database_url, user, session, tmp_path
):
    parts = urlsplit(database_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    user_part = parts.netloc.rpartition("@")[0]
    via_relay = urlunsplit(parts._replace(netloc=f"{user_part}@127.0.0.1:{relay.port}".lstrip("@")))
    auth = {"Authorization": f"Bearer {api_token_issue(user=user)[1]}"}
    turns = f"/api/v1/sessions/{session.pk}/turns"
    env = app_env(DATABASE_URL=via_relay, DATABASE_POOL_CHECK_AFTER_SECONDS="1")
    try:
        with gunicorn(env=env, log=tmp_path / "gunicorn.log", workers=1) as server:
            assert http("GET", server.url + "/api/v1/rooms", headers=auth)[0] == 200
            relay.stop()  # the database is gone

            answers = {}
            for name, method, path, body in (
                ("list", "GET", "/api/v1/rooms", None),
                ("turn", "POST", turns, {"user_input": "@writer hello", "mode": "manual"}),
                ("openai", "GET", "/api/openai/v1/models", None),
            ):
                started = time.monotonic()
                answers[name] = (
                    *http(method, server.url + path, body, auth, timeout=60),
                    time.monotonic() - started,
                )
            health = http("GET", server.url + "/api/v1/health")

            relay.start()  # back
            deadline = time.monotonic() + 30
            while (back := http("GET", server.url + "/api/v1/rooms", headers=auth))[0] != 200:
                assert time.monotonic() < deadline, back
                time.sleep(0.5)
            after = http("POST", server.url + turns, {"user_input": "@writer again", "mode": "manual"}, auth)
    finally:
        relay.stop()

    for name in ("list", "turn"):
        status, body, headers, took = answers[name]
        assert status == 503 and body["code"] == "database_unavailable", (name, status, body)
        assert headers["Retry-After"] == "5" and took < 10, (name, headers, took)
    status, body, _, took = answers["openai"]
    assert status == 503 and body["error"]["code"] == "database_unavailable" and took < 10, body
    assert body["error"]["type"] == "server_error"
    assert health[0] == 503 and health[1]["database"] == "unavailable"
    assert after[0] == 201, after
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
