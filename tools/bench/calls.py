"""One call of each kind the bench measures, timed from the client's side.

No Django here: the bench process calls the server over HTTP like any client, and the floor view
imports ``completion_send`` so that it sends exactly what the direct call sends.
"""

import http.client
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from openai.types.chat import ChatCompletion

FLOOR_PATH = "/bench/floor/turns"
SERVER_TIMING = re.compile(r'(\w+);dur=([\d.]+)(?:;desc="(\d+) queries")?')
# The arguments the SDK names; anything else in a recorded body (OpenRouter's ``usage``) is
# sent through ``extra_body``, so the replay is the same body.


class BenchError(RuntimeError):
    """The bench cannot go on (a call failed, a server did not start)."""


@dataclass(frozen=True)
class Timed:
    seconds: float
    server: dict[str, float]  # from Server-Timing: llm, db, app, total (ms) and queries
    body: dict[str, Any]


def server_timing_parse(header: str) -> dict[str, float]:
    """``llm;dur=1.0, db;dur=2.0;desc="6 queries", …`` → ``{"llm": 1.0, "db": 2.0, "queries": 6, …}``."""
    figures: dict[str, float] = {}
    for name, duration, queries in SERVER_TIMING.findall(header):
        figures[name] = float(duration)
        if queries:
            figures["queries"] = int(queries)
    return figures


class Api:
    """One keep-alive connection to the server under test: a sequence of calls is served by one
    worker, as one client's would be."""

    def __init__(self, port: int, *, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def post(self, path: str, payload: dict[str, Any], *, authorization: str) -> Timed:
        body = json.dumps(payload)
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        for attempt in (1, 2):
            try:
                started = time.perf_counter()
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                content = response.read()
                elapsed = time.perf_counter() - started
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection before reading the request.
                self.conn.close()
                if attempt == 2:
                    raise
        if not 200 <= response.status < 300:
            raise BenchError(f"POST {path} answered {response.status}: {content[:300]!r}")
        timing = server_timing_parse(response.getheader("Server-Timing", ""))
        return Timed(seconds=elapsed, server=timing, body=json.loads(content))

    def turn(self, token: str, session_id: str, text: str, *, mode: str = "manual") -> Timed:
        return self.post(
            f"/api/v1/sessions/{session_id}/turns",
            {"user_input": text, "mode": mode},
            authorization=f"Bearer {token}",
        )

    def floor(self, token: str, session_id: str, sent: dict[str, Any]) -> Timed:
        return self.post(FLOOR_PATH, {"session": session_id, "request": sent}, authorization=f"Token {token}")


def completion_send(client: Any, sent: dict[str, Any]) -> Any:
    """The recorded request body sent again through an ``openai`` client, as it is: ``client.post``
    with the body ready (the client's own way to send custom requests), the way Pantheon's provider
    sends it. The typed ``chat.completions.create`` would add its request transformation — a cost
    that grows with the history and that Pantheon does not pay — and make the floor look slower."""
    return client.post("/chat/completions", cast_to=ChatCompletion, body=sent)


def direct(client: Any, sent: dict[str, Any]) -> tuple[float, int]:
    """The recorded request straight from an ``openai`` client: seconds and prompt tokens."""
    started = time.perf_counter()
    completion = completion_send(client, sent)
    elapsed = time.perf_counter() - started
    return elapsed, completion.usage.prompt_tokens if completion.usage else 0
