"""The fake OpenAI-compatible server itself: what tests and the benchmark rely on."""

import json
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
