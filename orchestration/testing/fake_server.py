"""A fake OpenAI-compatible server on 127.0.0.1, for tests and the benchmark.

Speaks ``POST /v1/chat/completions`` (and ``/chat/completions``), ``GET /v1/models`` and OpenRouter's
``GET /api/v1/generation?id=…``. Calls are answered from a script of ``Step``s (optionally per model)
or, when the script is empty, with a deterministic default reply carrying usage and a cost (JSON
requests get the offline provider's answer for the routing, summary or extraction prompt). Faults on
demand: delays, HTTP errors with Retry-After, an ``error`` object in a 200, a malformed body, no usage,
empty choices, a body trickled behind keep-alive whitespace. Every request is recorded for assertions.

A request with ``"stream": true`` is answered with Server-Sent Events, as OpenAI and OpenRouter do:
the reply in ``chat.completion.chunk``s, a finish chunk, a usage chunk, ``data: [DONE]``. Per step:
chunk size (words or characters) and the delay between chunks, a delay (or keep-alive comments)
before the first chunk, a cut mid-stream, no usage, an ``error`` chunk mid-stream, and a gate that
holds the rest of the reply back until the test calls ``step.release()``.

    with FakeLlmServer() as server:
        server.enqueue(Step(status=429, retry_after=1))
        client = OpenAI(base_url=server.base_url, api_key="test")

Standalone: ``python -m orchestration.testing.fake_server --port 8099 --latency-ms 50``.

Each response goes out in one write on a socket without Nagle's algorithm, over HTTP/1.1 keep-alive
with a Content-Length: otherwise every call stalls ~40 ms on delayed ACKs and the benchmark measures
the fake, not Pantheon. A stream goes out chunked, one write (and flush) per event.
"""

import argparse
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from orchestration.llm.gateway import ChatMessage, LlmRequest
from orchestration.llm.offline import OfflineGateway, word_pieces
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens

DEFAULT_PRICE_IN = Decimal("0.30")  # USD per million tokens, for the reported ``cost``
DEFAULT_PRICE_OUT = Decimal("0.85")
MODELS = ("deepseek/deepseek-chat", "qwen/qwen-2.5-72b-instruct")
KEEPALIVE_INTERVAL = 0.05  # seconds between whitespace bytes of a trickled body
STREAM_KEEPALIVE = b": OPENROUTER PROCESSING\n\n"  # an SSE comment, as OpenRouter sends
ERROR_MESSAGES = {
    400: "bad request",
    401: "invalid API key",
    402: "insufficient credits",
    403: "flagged by moderation",
    408: "request timeout",
    429: "rate limited",
    502: "model down",
    503: "no provider available",
}


@dataclass
class Step:
    """How to answer one call. Unset fields take the default behaviour."""

    reply: str | None = None
    model: str | None = None  # answer only a call for this provider model id
    route: str | None = None  # answer only a call under this route (``FakeLlmServer.route_url``)
    delay: float = 0.0  # seconds before answering
    status: int = 200  # anything else: an OpenRouter-style error body
    retry_after: float | None = None  # Retry-After header (with any status)
    error_in_body: bool = False  # HTTP 200 whose body is an ``error`` object
    malformed: bool = False  # a truncated, non-JSON body
    raw_body: str | None = None  # sent as is, with ``content_type``
    content_type: str = "application/json"
    no_usage: bool = False
    empty_choices: bool = False
    usage: dict[str, Any] | None = None  # explicit usage block
    cost: str | None = None  # explicit usage.cost (USD)
    # Usage details, as OpenRouter reports them: parts of the prompt and completion counts.
    cached_tokens: int | None = None  # prompt_tokens_details.cached_tokens
    cache_write_tokens: int | None = None  # prompt_tokens_details.cache_write_tokens
    reasoning_tokens: int | None = None  # completion_tokens_details.reasoning_tokens
    keepalive: float = 0.0  # seconds of whitespace (a stream: comments) before the body (OpenRouter)
    # Streams only.
    chunk_words: int = 1  # words per chunk (a word keeps the whitespace before it) …
    chunk_chars: int = 0  # … or, when set, characters per chunk
    chunk_delay: float = 0.0  # seconds between two chunks
    first_chunk_delay: float = 0.0  # seconds between the headers and the first chunk
    cut_after: int | None = None  # close the connection after N content chunks: no finish, no [DONE]
    error_after: int | None = None  # an ``error`` chunk after N content chunks (``error_in_body``: 0)
    done: bool = True  # end with ``data: [DONE]``
    gate_after: int | None = None  # after N content chunks, hold the rest until ``release()``
    gate_timeout: float = 10.0  # a gate not released by then cuts the stream
    held: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def release(self) -> None:
        """Let a gated stream send the rest of its reply."""
        self.released.set()


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    client_port: int = 0  # tells the client's connections apart (reuse)

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
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    # ``answer_waiting()``: calls waiting out their delay when it is called answer at once.
    wake: threading.Condition = field(default_factory=threading.Condition)
    wakes: int = 0

    def delay_wait(self, seconds: float) -> None:
        with self.wake:
            seen = self.wakes
            self.wake.wait_for(lambda: self.wakes != seen, timeout=seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider
    disable_nagle_algorithm = True  # no 40 ms stalls on delayed ACKs
    server: "_Server"

    def log_message(self, format, *args):  # silence the default stderr log
        pass

    def _head(self, status: int, length: int | None, content_type: str, extra: dict | None) -> bytes:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        body = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        lines += [f"Content-Type: {content_type}", body]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", extra: dict | None = None
    ) -> None:
        # Head and body in one write: no partial packets waiting on ACKs.
        self.wfile.write(self._head(status, len(body), content_type, extra) + body)
        self.wfile.flush()

    def _json(self, status: int, payload: Any, extra: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), extra=extra)

    def do_GET(self):
        url = urlparse(self.path)
        path = url.path.rstrip("/")
        if path.endswith("/models"):
            self._json(200, {"object": "list", "data": [_model_card(m) for m in MODELS]})
        elif path.endswith("/generation"):
            generation_id = parse_qs(url.query).get("id", [""])[0]
            with self.server.state.lock:
                generation = self.server.state.generations.get(generation_id)
            if generation is None:
                self._json(404, {"error": {"message": "generation not found", "code": 404}})
            else:
                self._json(200, {"data": generation})
        else:
            self._json(404, {"error": {"message": "not found", "code": 404}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not urlparse(self.path).path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "code": 404}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON body", "code": 400}})
            return
        state = self.server.state
        with state.lock:
            state.requests.append(
                RecordedRequest(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    client_port=self.client_address[1],
                )
            )
            step = self._next_step(body.get("model", ""), _route_of(self.path))
            call_id = next(state.ids)
        delay = state.latency + step.delay
        if delay:
            state.delay_wait(delay)
        self._answer(step, body, call_id)

    def _next_step(self, model: str, route: str) -> Step:
        script = self.server.state.script
        for index, step in enumerate(script):
            if step.model in (None, model) and step.route in (None, route):
                del script[index]
                return step
        return Step()

    def _answer(self, step: Step, body: dict, call_id: int) -> None:
        extra = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else None
        if step.status != 200:
            message = ERROR_MESSAGES.get(step.status, "provider error")
            self._json(step.status, {"error": {"message": message, "code": step.status}}, extra=extra)
            return
        if step.raw_body is not None:
            self._send(200, step.raw_body.encode(), content_type=step.content_type)
            return
        if body.get("stream") is True:
            self._stream(step, body, call_id)
            return
        if step.malformed:
            self._send(200, b'{"id": "gen-broken", "choices": [ {"message": ')
            return
        generation_id = f"gen-fake-{call_id}"
        model = body.get("model", "")
        messages = body.get("messages", [])
        if step.error_in_body:
            payload: dict[str, Any] = {
                "id": generation_id,
                "error": {"message": "upstream failed mid-generation", "code": 502},
            }
            if step.usage is not None:
                payload["usage"] = step.usage
            self._deliver(json.dumps(payload).encode(), step.keepalive)
            return
        reply = step.reply if step.reply is not None else _default_reply(body)
        choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        payload = {
            "id": generation_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [] if step.empty_choices else [choice],
        }
        usage = self._served(step, generation_id, model, messages, reply)
        if not step.no_usage:
            payload["usage"] = usage
        self._deliver(json.dumps(payload).encode(), step.keepalive)

    def _served(self, step: Step, generation_id: str, model: str, messages: list, reply: str) -> dict:
        """Records the generation (for ``/generation``) and returns the usage block it reports."""
        prompt_tokens = count_messages_tokens(str(m.get("content", "")) for m in messages)
        completion_tokens = count_text_tokens(reply)
        cost = (
            Decimal(step.cost)
            if step.cost is not None
            else (prompt_tokens * DEFAULT_PRICE_IN + completion_tokens * DEFAULT_PRICE_OUT) / 1_000_000
        )
        with self.server.state.lock:
            self.server.state.generations[generation_id] = {
                "id": generation_id,
                "model": model,
                "total_cost": float(cost),
                "native_tokens_prompt": prompt_tokens,
                "native_tokens_completion": completion_tokens,
                "native_tokens_cached": step.cached_tokens or 0,
                "native_tokens_reasoning": step.reasoning_tokens or 0,
            }
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost": float(cost),  # a JSON number, as OpenRouter sends
        }
        if step.cached_tokens is not None or step.cache_write_tokens is not None:
            usage["prompt_tokens_details"] = {
                "cached_tokens": step.cached_tokens or 0,
                "cache_write_tokens": step.cache_write_tokens or 0,
            }
        if step.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": step.reasoning_tokens}
        return step.usage or usage

    def _stream(self, step: Step, body: dict, call_id: int) -> None:
        """The reply as Server-Sent Events, chunk by chunk (HTTP/1.1 chunked, a flush per event)."""
        generation_id = f"gen-fake-{call_id}"
        model = body.get("model", "")
        reply = step.reply if step.reply is not None else _default_reply(body)
        pieces = _pieces(reply, chars=step.chunk_chars, words=step.chunk_words)
        error_after = 0 if step.error_in_body and step.error_after is None else step.error_after
        envelope = {
            "id": generation_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def event(**fields: Any) -> None:
            self._chunk(b"data: " + json.dumps({**envelope, **fields}).encode() + b"\n\n")

        self.wfile.write(self._head(200, None, "text/event-stream", {"Cache-Control": "no-cache"}))
        self.wfile.flush()
        for _ in range(int(step.keepalive / KEEPALIVE_INTERVAL)):
            self._chunk(STREAM_KEEPALIVE)
            time.sleep(KEEPALIVE_INTERVAL)
        time.sleep(step.first_chunk_delay)
        if step.malformed:
            self._chunk(b'data: {"id": "gen-broken", "choices": [ {"delta": \n\n')
            self._chunk(b"")
            return
        sent: list[str] = []
        for index, piece in enumerate(pieces):
            if index in (step.cut_after, error_after):
                break
            if index == step.gate_after and not self._gate(step):
                self._cut()
                return
            if index:
                time.sleep(step.chunk_delay)
            delta = {"content": piece} if index else {"role": "assistant", "content": piece}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            event(choices=[] if step.empty_choices else [choice])
            sent.append(piece)
        if step.cut_after is not None and len(sent) >= step.cut_after:
            self._cut()
            return
        usage = self._served(step, generation_id, model, body.get("messages", []), "".join(sent))
        if error_after is not None:
            failure = {"message": "upstream failed mid-generation", "code": 502}
            choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
            extra = {"usage": step.usage} if step.usage is not None else {}
            event(error=failure, choices=[choice], **extra)
        else:
            event(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if not step.no_usage:
                event(choices=[], usage=usage)
        if step.done:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")  # the last chunk of the body

    def _chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk, sent at once (an empty one ends the body)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _gate(self, step: Step) -> bool:
        """Holds the rest of the stream until the test releases the step (False: never released)."""
        step.held.set()
        return step.released.wait(step.gate_timeout)

    def _cut(self) -> None:
        """Drops the connection mid-body, as a provider that fails or a proxy that times out does."""
        self.close_connection = True

    def _deliver(self, body: bytes, keepalive: float) -> None:
        if not keepalive:
            self._send(200, body)
            return
        # OpenRouter-style: headers at once, then whitespace while the "model" works, then the JSON.
        spaces = max(int(keepalive / KEEPALIVE_INTERVAL), 1)
        self.wfile.write(self._head(200, spaces + len(body), "application/json", None))
        for _ in range(spaces):
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(KEEPALIVE_INTERVAL)
        self.wfile.write(body)
        self.wfile.flush()


def _route_of(path: str) -> str:
    """The route a request was sent under: ``/east/v1/chat/completions`` → ``east`` ("" for none)."""
    parts = [p for p in urlparse(path).path.split("/") if p]
    return parts[0] if len(parts) > 1 and parts[1] == "v1" else ""


def _pieces(reply: str, *, chars: int, words: int) -> list[str]:
    """The reply cut into chunks of ``chars`` characters or, by default, ``words`` words."""
    if chars > 0:
        return [reply[i : i + chars] for i in range(0, len(reply), chars)]
    found = word_pieces(reply)
    size = max(words, 1)
    return ["".join(found[i : i + size]) for i in range(0, len(found), size)]


def _model_card(model_id: str) -> dict:
    """An OpenRouter-style ``/models`` entry: per-token prices as strings, as OpenRouter sends them
    (the prices this server actually charges)."""
    return {
        "id": model_id,
        "object": "model",
        "context_length": 131072,
        "pricing": {
            "prompt": str(DEFAULT_PRICE_IN / 1_000_000),
            "completion": str(DEFAULT_PRICE_OUT / 1_000_000),
        },
        "top_provider": {"context_length": 131072, "max_completion_tokens": 16384},
    }


def _default_reply(body: dict) -> str:
    """Deterministic: JSON requests get the offline provider's answer, others a short echo."""
    messages = body.get("messages", [])
    if (body.get("response_format") or {}).get("type") == "json_object":
        chat = tuple(
            ChatMessage(m.get("role", "user"), str(m.get("content", "")))
            for m in messages
            if m.get("role") in ("system", "user", "assistant")
        )
        request = LlmRequest(
            model_alias="fake",
            provider_model=body.get("model", ""),
            messages=chat,
            max_output_tokens=int(body.get("max_tokens") or 256),
            purpose=_guess_purpose(m.content for m in chat if m.role == "system"),
            json_mode=True,
        )
        return OfflineGateway().complete(request).content
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    words = str(last.get("content", "")).split()[:12]
    return "Noted: " + " ".join(words)


def _guess_purpose(system_texts: Iterable[str]) -> str:
    system = "\n".join(system_texts)
    if "AGENT_KEYS:" in system:
        return "routing"
    if "key_facts" in system:
        return "extraction"
    if "summary_text" in system:
        return "summary"
    return "agent_reply"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of hundreds of calls at once (make bench's capacity scenario)

    def __init__(self, address, state: _State):
        self.state = state
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # A client that gave up (timeout) closes its end while we sleep: not worth a traceback.
        pass


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
        return f"http://{self._server.server_address[0]}:{self.port}/v1"

    def route_url(self, route: str) -> str:
        """A base URL of its own on this server, for a deployment: steps with ``route`` answer it."""
        return f"http://{self._server.server_address[0]}:{self.port}/{route}/v1"

    def fail(self, times: int, *, status: int = 503, **matching: Any) -> None:
        """Script ``times`` failures (HTTP ``status``) for the calls ``matching`` (model, route …)."""
        self.enqueue(*(Step(status=status, **matching) for _ in range(times)))

    def start(self) -> "FakeLlmServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> "FakeLlmServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def enqueue(self, *steps: Step) -> None:
        """Append steps to the script: each answers one call (the first that matches its model)."""
        with self.state.lock:
            self.state.script.extend(steps)

    def script(self, steps: Iterable[Step]) -> None:
        """Replace the script."""
        with self.state.lock:
            self.state.script.clear()
            self.state.script.extend(steps)

    def reset(self) -> None:
        """Empty the script and the recorded requests (generations stay, for reconciliation)."""
        with self.state.lock:
            self.state.script.clear()
            self.state.requests.clear()

    def set_latency(self, latency_ms: float) -> None:
        self.state.latency = latency_ms / 1000

    def answer_waiting(self) -> None:
        """Every call now waiting out its latency (or its step's delay) answers at once; later calls
        wait theirs. A test that has seen what it wanted while the calls were held ends them here
        instead of sleeping out a latency chosen to outlast its checks."""
        with self.state.wake:
            self.state.wakes += 1
            self.state.wake.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def pending_steps(self) -> int:
        with self.state.lock:
            return len(self.state.script)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLlmServer(host=args.host, port=args.port, latency_ms=args.latency_ms)
    print(f"fake LLM server on {server.base_url} (latency {args.latency_ms:g} ms)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
