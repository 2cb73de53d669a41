"""The openai provider through the real ``openai`` client against the fake server on 127.0.0.1."""

import time
from decimal import Decimal

import pytest

from orchestration.llm.fake_server import Step
from orchestration.llm.gateway import ChatMessage, LlmCallError, LlmRequest
from orchestration.tests.conftest import gateway_for


def request(**overrides) -> LlmRequest:
    fields = {
        "model_alias": "deepseek",
        "provider_model": "deepseek/deepseek-chat",
        "messages": (ChatMessage("system", "You are Writer."), ChatMessage("user", "Open the story.")),
        "max_output_tokens": 128,
    }
    return LlmRequest(**{**fields, **overrides})


def failure(server, step: Step, **gateway_kwargs) -> LlmCallError:
    server.enqueue(step)
    with pytest.raises(LlmCallError) as caught:
        gateway_for(server, **gateway_kwargs).complete(request())
    return caught.value


def test_success_captures_usage_cost_and_generation_id(fake_llm_server):
    fake_llm_server.reset()
    fake_llm_server.enqueue(
        Step(
            reply="Once upon a time.", usage={"prompt_tokens": 21, "completion_tokens": 5, "cost": 0.0000105}
        )
    )
    response = gateway_for(fake_llm_server).complete(request())
    assert response.content == "Once upon a time."
    assert (response.input_tokens, response.output_tokens, response.tokens_estimated) == (21, 5, False)
    assert response.provider_cost_usd == Decimal("0.0000105")
    assert response.generation_id.startswith("gen-fake-")


def test_sends_attribution_headers_usage_accounting_and_limits(fake_llm_server):
    fake_llm_server.reset()
    gateway_for(fake_llm_server).complete(request())
    sent = fake_llm_server.requests[-1]
    assert sent.headers["http-referer"] == "https://pantheon.test"
    assert sent.headers["x-title"] == "Pantheon tests"
    assert sent.body["usage"] == {"include": True}
    assert sent.body["max_tokens"] == 128
    assert sent.model == "deepseek/deepseek-chat"
    assert [m["role"] for m in sent.messages] == ["system", "user"]
    assert "response_format" not in sent.body


def test_json_mode_asks_for_a_json_object(fake_llm_server):
    fake_llm_server.reset()
    gateway_for(fake_llm_server).complete(request(json_mode=True, purpose="routing"))
    assert fake_llm_server.requests[-1].body["response_format"] == {"type": "json_object"}


def test_missing_usage_is_estimated_with_tiktoken_and_flagged(fake_llm_server):
    fake_llm_server.reset()
    fake_llm_server.enqueue(Step(reply="A short reply.", no_usage=True))
    response = gateway_for(fake_llm_server).complete(request())
    assert response.tokens_estimated is True
    assert response.input_tokens > 0 and response.output_tokens == 4
    assert response.provider_input_tokens is None and response.provider_cost_usd is None


@pytest.mark.parametrize(
    ("step", "code", "status"),
    [
        (Step(status=429, retry_after=3), "provider_rate_limited", 429),
        (Step(status=500), "provider_unavailable", 500),
        (Step(status=502), "provider_unavailable", 502),
        (Step(status=503), "provider_unavailable", 503),
        (Step(status=400), "provider_bad_request", 400),
        (Step(status=401), "provider_auth_error", 401),
        (Step(status=402), "provider_out_of_credits", 402),
        (Step(status=403), "provider_moderation", 403),
        (Step(error_in_body=True), "provider_error_in_body", None),
        (Step(malformed=True), "provider_malformed_response", None),
        (Step(empty_choices=True), "provider_empty_response", None),
        (Step(reply="   "), "provider_empty_response", None),
    ],
)
def test_provider_faults_map_to_stable_codes(fake_llm_server, step, code, status):
    fake_llm_server.reset()
    error = failure(fake_llm_server, step)
    assert error.code == code
    assert error.http_status == status


def test_rate_limit_carries_retry_after(fake_llm_server):
    fake_llm_server.reset()
    assert failure(fake_llm_server, Step(status=429, retry_after=7)).retry_after == 7.0


def test_timeout_is_bounded_by_the_setting(fake_llm_server):
    fake_llm_server.reset()
    started = time.monotonic()
    error = failure(fake_llm_server, Step(delay=3), timeout=0.5, max_retries=0)
    elapsed = time.monotonic() - started
    assert error.code == "provider_timeout"
    assert elapsed < 0.5 * 1 + 1.0


def test_retries_are_made_on_server_errors(fake_llm_server):
    fake_llm_server.reset()
    fake_llm_server.enqueue(Step(status=500), Step(reply="second time lucky"))
    response = gateway_for(fake_llm_server, max_retries=1).complete(request())
    assert response.content == "second time lucky"
    assert len(fake_llm_server.requests) == 2


def test_model_scoped_steps_only_answer_their_model(fake_llm_server):
    fake_llm_server.reset()
    fake_llm_server.enqueue(Step(model="qwen/qwen-2.5-72b-instruct", status=500))
    ok = gateway_for(fake_llm_server).complete(request())
    assert ok.content.startswith("Noted:")
    with pytest.raises(LlmCallError):
        gateway_for(fake_llm_server).complete(request(provider_model="qwen/qwen-2.5-72b-instruct"))
