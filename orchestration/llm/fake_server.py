"""A fake OpenAI-compatible server on 127.0.0.1, for tests and the benchmark.

Speaks ``POST /v1/chat/completions`` (and ``/chat/completions``), ``GET /v1/models`` and OpenRouter's
``GET /api/v1/generation?id=…``. Calls are answered from a script of ``Step``s (optionally per model)
or, when the script is empty, with a deterministic default reply carrying usage and a cost. Faults on
demand: delays, HTTP errors with Retry-After, an ``error`` object in a 200, a malformed body, no usage,
empty choices. Every request is recorded for assertions.

    with FakeLlmServer() as server:
        server.enqueue(Step(status=429, retry_after=1))
        client = OpenAI(base_url=server.base_url, api_key="test")

Standalone: ``python -m orchestration.llm.fake_server --port 8099 --latency-ms 50``.
"""

import argparse
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from orchestration.llm.tokens import count_messages_tokens, count_text_tokens

DEFAULT_PRICE_IN = Decimal("0.30")  # USD per million, for the reported ``cost``
DEFAULT_PRICE_OUT = Decimal("0.85")


@dataclass
class Step:
    """How to answer one call. Unset fields take the default behaviour."""

    reply: str | None = None
    model: str | None = None  # answer only a call for this provider model id
    delay: float = 0.0  # seconds before answering
    status: int = 200
    retry_after: float | None = None
    error_in_body: bool = False  # HTTP 200 whose body is an ``error`` object
    malformed: bool = False  # a body that is not JSON
    no_usage: bool = False
    empty_choices: bool = False
    usage: dict[str, Any] | None = None  # explicit usage block
    cost: str | None = None  # explicit usage.cost


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return self.body.get("model", "")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])


@dataclass
class _State:
    latency: float = 0.0
    script: deque = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    generations: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count(1))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider
    disable_nagle_algorithm = True  # no 40 ms stalls on delayed ACKs
    server: "_Server"

    def log_message(self, format, *args):  # silence the default stderr log
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", extra: dict | None = None
    ):
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        # One write for head and body: no partial packets waiting on ACKs.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.wfile.flush()

    def _json(self, status: int, payload: Any, extra: dict | None = None):
        self._send(status, json.dumps(payload).encode(), extra=extra)

    def do_GET(self):
        url = urlparse(self.path)
        state = self.server.state
        if url.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "deepseek/deepseek-chat", "object": "model"}]})
        elif url.path.rstrip("/").endswith("/generation"):
            gen_id = parse_qs(url.query).get("id", [""])[0]
            with state.lock:
                cost = state.generations.get(gen_id)
            if cost is None:
                self._json(404, {"error": {"message": "generation not found", "code": 404}})
            else:
                self._json(200, {"data": {"id": gen_id, "total_cost": float(cost)}})
        else:
            self._json(404, {"error": {"message": "not found", "code": 404}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON body", "code": 400}})
            return
        if not urlparse(self.path).path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "code": 404}})
            return
        state = self.server.state
        with state.lock:
            state.requests.append(
                RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            step = self._next_step(body.get("model", ""))
            call_id = next(state.ids)
        delay = state.latency + step.delay
        if delay:
            time.sleep(delay)
        self._answer(step, body, call_id)

    def _next_step(self, model: str) -> Step:
        script = self.server.state.script
        for index, step in enumerate(script):
            if step.model is None or step.model == model:
                del script[index]
                return step
        return Step()

    def _answer(self, step: Step, body: dict, call_id: int) -> None:
        if step.status != 200:
            extra = {"Retry-After": str(step.retry_after)} if step.retry_after is not None else None
            message = {429: "rate limited", 402: "insufficient credits"}.get(step.status, "provider error")
            self._json(step.status, {"error": {"message": message, "code": step.status}}, extra=extra)
            return
        if step.malformed:
            self._send(
                200, b'{"id": "gen-broken", "choices": [ {"message": ', content_type="application/json"
            )
            return
        generation_id = f"gen-fake-{call_id}"
        if step.error_in_body:
            self._json(
                200,
                {"id": generation_id, "error": {"message": "upstream failed mid-generation", "code": 502}},
            )
            return
        messages = body.get("messages", [])
        reply = step.reply if step.reply is not None else self._default_reply(body)
        prompt_tokens = count_messages_tokens(str(m.get("content", "")) for m in messages)
        completion_tokens = count_text_tokens(reply)
        cost = (
            Decimal(step.cost)
            if step.cost is not None
            else (prompt_tokens * DEFAULT_PRICE_IN + completion_tokens * DEFAULT_PRICE_OUT)
            / Decimal(1_000_000)
        )
        payload: dict[str, Any] = {
            "id": generation_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": []
            if step.empty_choices
            else [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        }
        if not step.no_usage:
            payload["usage"] = step.usage or {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "cost": float(cost),
            }
        with self.server.state.lock:
            self.server.state.generations[generation_id] = str(cost)
        self._json(200, payload)

    @staticmethod
    def _default_reply(body: dict) -> str:
        if (body.get("response_format") or {}).get("type") == "json_object":
            return json.dumps({"selected_agent_keys": []})
        last = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), {})
        words = str(last.get("content", "")).split()[:12]
        return "Noted: " + " ".join(words)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, state: _State):
        self.state = state
        super().__init__(address, _Handler)


class FakeLlmServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0):
        self.state = _State(latency=latency_ms / 1000)
        self._server = _Server((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeLlmServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeLlmServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def enqueue(self, *steps: Step) -> None:
        with self.state.lock:
            self.state.script.extend(steps)

    def reset(self) -> None:
        with self.state.lock:
            self.state.script.clear()
            self.state.requests.clear()

    def set_latency(self, latency_ms: float) -> None:
        self.state.latency = latency_ms / 1000

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLlmServer(port=args.port, latency_ms=args.latency_ms)
    print(f"fake LLM server on {server.base_url} (latency {args.latency_ms} ms)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._server.serve_forever()


if __name__ == "__main__":
    main()
