"""The fake OpenAI-compatible server itself: what tests and the benchmark rely on."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from orchestration.llm.gateway import ChatMessage, LlmCallError, LlmRequest
from orchestration.llm.openai_provider import OpenAIGateway
from orchestration.testing.fake_server import Step

ROOT = Path(__file__).resolve().parents[3]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http on 127.0.0.1)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def request(text="Hello there", *, system="You are Writer.", json_mode=False, model="deepseek/deepseek-chat"):
    messages = (ChatMessage("system", system), ChatMessage("user", text))
    return LlmRequest("deepseek", model, messages, 64, json_mode=json_mode)


def test_generation_endpoint_reports_the_cost_of_a_served_generation(fake_llm, openai_gateway_make):
    response = openai_gateway_make().complete(request())
    root = fake_llm.base_url.removesuffix("/v1")
    status, body = get(f"{root}/api/v1/generation?id={response.generation_id}")
    assert status == 200
    assert body["data"]["id"] == response.generation_id
    assert Decimal(str(body["data"]["total_cost"])) == response.provider_cost_usd
    assert get(f"{root}/api/v1/generation?id=gen-unknown")[0] == 404


def test_models_endpoint_lists_models(fake_llm):
    status, body = get(f"{fake_llm.base_url}/models")
    assert status == 200 and "deepseek/deepseek-chat" in [m["id"] for m in body["data"]]


def test_default_reply_echoes_the_last_user_message(fake_llm, openai_gateway_make):
    assert (
        openai_gateway_make().complete(request("Open the story now")).content == "Noted: Open the story now"
    )


def test_default_json_answers_the_routing_prompt(fake_llm, openai_gateway_make):
    system = "Pick agents. Answer with strict JSON only.\nAGENT_KEYS: writer, critic"
    answer = openai_gateway_make().complete(request("ask @critic", system=system, json_mode=True))
    assert json.loads(answer.content) == {"selected_agent_keys": ["critic"]}


def test_default_json_answers_summary_and_extraction_prompts(fake_llm, openai_gateway_make):
    gateway = openai_gateway_make()
    summary = gateway.complete(request("User: Who is Ada?", system='{"summary_text": "..."}', json_mode=True))
    assert json.loads(summary.content) == {"summary_text": "User: Who is Ada?"}
    extraction = gateway.complete(request("Who is Ada?", system="key_facts, decisions …", json_mode=True))
    assert json.loads(extraction.content)["open_questions"] == ["Who is Ada?"]


def test_script_replaces_pending_steps_and_steps_are_used_once(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=500))
    fake_llm.script([Step(reply="first"), Step(reply="second")])
    gateway = openai_gateway_make()
    assert [gateway.complete(request()).content for _ in range(3)] == [
        "first",
        "second",
        "Noted: Hello there",
    ]
    assert fake_llm.pending_steps == 0


def test_fixed_latency_delays_every_answer(fake_llm, openai_gateway_make):
    fake_llm.set_latency(150)
    started = time.monotonic()
    openai_gateway_make().complete(request())
    assert time.monotonic() - started >= 0.15


def test_calls_waiting_out_their_latency_answer_at_once_when_told(fake_llm, openai_gateway_make):
    fake_llm.set_latency(30_000)
    gateway = openai_gateway_make()
    with ThreadPoolExecutor(max_workers=3) as pool:
        waiting = [pool.submit(gateway.complete, request(f"call {i}")) for i in range(3)]
        deadline = time.monotonic() + 5
        while len(fake_llm.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert not any(call.done() for call in waiting)  # still waiting out 30 s
        started = time.monotonic()
        fake_llm.answer_waiting()
        replies = sorted(call.result(timeout=5).content for call in waiting)
    assert replies == [f"Noted: call {i}" for i in range(3)]
    assert time.monotonic() - started < 2


def test_concurrent_requests_are_all_recorded(fake_llm, openai_gateway_make):
    fake_llm.set_latency(20)
    gateway = openai_gateway_make()
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda i: gateway.complete(request(f"call {i}")).content, range(24)))
    assert sorted(replies) == sorted(f"Noted: call {i}" for i in range(24))
    recorded = sorted(r.messages[-1]["content"] for r in fake_llm.requests)
    assert recorded == sorted(f"call {i}" for i in range(24))


def test_unknown_path_is_a_404(fake_llm):
    assert get(f"{fake_llm.base_url}/nothing-here")[0] == 404


@pytest.mark.integration
def test_runs_standalone_with_a_fixed_latency():
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.testing.fake_server", "--port", "0", "--latency-ms", "120"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().split()[4]
        gateway = OpenAIGateway(base_url=base_url, api_key="k", timeout=5.0, max_retries=0)
        started = time.monotonic()
        assert gateway.complete(request("standalone")).content == "Noted: standalone"
        assert time.monotonic() - started >= 0.12
    finally:
        server.terminate()
        server.wait(timeout=5)
    with pytest.raises(LlmCallError) as caught:
        gateway.complete(request())
    assert caught.value.code == "provider_connection_error"


# --- streams, on the wire ---------------------------------------------------------------------------


def stream_open(server, **body) -> socket.socket:
    """POSTs a streamed chat completion on a raw socket; returns the socket after the request."""
    payload = json.dumps(
        {"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        | body
    ).encode()
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    connection.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return connection


class ChunkedReader:
    """Reads an HTTP/1.1 response head, then its body one chunk at a time."""

    def __init__(self, connection: socket.socket):
        self.file = connection.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers = {}
        while (line := self.file.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def chunk(self) -> bytes | None:
        """The next chunk; None when the connection closed before the body's last chunk."""
        size_line = self.file.readline()
        if not size_line:
            return None
        data = self.file.read(int(size_line, 16))
        self.file.readline()  # the CRLF after the data
        return data

    def chunks(self) -> list[bytes | None]:
        found = []
        while (data := self.chunk()) not in (b"", None):
            found.append(data)
        return [*found, data]


def event_json(data: bytes) -> dict:
    assert data.startswith(b"data: ") and data.endswith(b"\n\n"), data
    return json.loads(data[6:-2])


def test_a_stream_is_proper_sse_one_event_per_chunk_ending_with_done(fake_llm):
    fake_llm.enqueue(Step(reply="Hello there, friend.", usage={"prompt_tokens": 5, "completion_tokens": 4}))
    with stream_open(fake_llm) as connection:
        reader = ChunkedReader(connection)
        *events, last = reader.chunks()
    assert reader.status == 200
    assert reader.headers["content-type"] == "text/event-stream"
    assert reader.headers["transfer-encoding"] == "chunked" and "content-length" not in reader.headers
    assert last == b"" and events[-1] == b"data: [DONE]\n\n"
    chunks = [event_json(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    content = [c["choices"][0]["delta"]["content"] for c in chunks[:-2]]
    assert content == ["Hello", " there,", " friend."]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4}


def test_a_gated_stream_holds_the_rest_until_released(fake_llm):
    step = Step(reply="first then the rest", gate_after=1)
    fake_llm.enqueue(step)
    with stream_open(fake_llm) as connection:
        reader = ChunkedReader(connection)
        first = event_json(reader.chunk())
        assert step.held.wait(5)  # the server sent one chunk and waits
        step.release()
        rest = reader.chunks()
    assert first["choices"][0]["delta"]["content"] == "first"
    assert event_json(rest[0])["choices"][0]["delta"]["content"] == " then"
    assert rest[-2:] == [b"data: [DONE]\n\n", b""]


def test_a_gate_never_released_cuts_the_stream(fake_llm):
    fake_llm.enqueue(Step(reply="first then the rest", gate_after=1, gate_timeout=0.1))
    with stream_open(fake_llm) as connection:
        assert ChunkedReader(connection).chunks()[1:] == [None]


def test_a_cut_stream_closes_the_connection_mid_body(fake_llm):
    fake_llm.enqueue(Step(reply="one two three four", cut_after=2))
    with stream_open(fake_llm) as connection:
        *events, last = ChunkedReader(connection).chunks()
    assert last is None  # no last chunk: the connection closed mid-body
    assert [event_json(e)["choices"][0]["delta"]["content"] for e in events] == ["one", " two"]


def test_a_stream_error_chunk_follows_the_content_sent(fake_llm):
    fake_llm.enqueue(Step(reply="one two three", error_after=1, usage={"prompt_tokens": 3}))
    with stream_open(fake_llm) as connection:
        events = ChunkedReader(connection).chunks()
    error = event_json(events[1])
    assert error["error"]["message"] == "upstream failed mid-generation"
    assert error["choices"][0]["finish_reason"] == "error" and error["usage"] == {"prompt_tokens": 3}
    assert events[2:] == [b"data: [DONE]\n\n", b""]


def test_a_stream_can_omit_usage_and_done(fake_llm):
    fake_llm.enqueue(Step(reply="short", no_usage=True, done=False))
    with stream_open(fake_llm) as connection:
        events = ChunkedReader(connection).chunks()
    assert [event_json(e)["choices"][0].get("finish_reason") for e in events[:-1]] == [None, "stop"]
    assert events[-1] == b""


def test_keepalive_comments_come_before_the_first_chunk_of_a_stream(fake_llm):
    fake_llm.enqueue(Step(reply="late", keepalive=0.2))
    with stream_open(fake_llm) as connection:
        events = ChunkedReader(connection).chunks()
    comments = [e for e in events if e and e.startswith(b":")]
    assert comments and events[: len(comments)] == comments
    assert event_json(events[len(comments)])["choices"][0]["delta"]["content"] == "late"


def test_the_default_stream_is_the_default_reply_word_by_word(fake_llm):
    with stream_open(fake_llm, messages=[{"role": "user", "content": "Open the story"}]) as connection:
        events = ChunkedReader(connection).chunks()
    words = [event_json(e)["choices"][0]["delta"]["content"] for e in events[:3]]
    assert words == ["Noted:", " Open", " the"]
