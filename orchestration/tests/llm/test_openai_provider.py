"""The openai provider through the real ``openai`` client against the fake server on 127.0.0.1."""

import logging
import socket
import time
from decimal import Decimal

import pytest

from conftest import REFERER, TITLE
from orchestration.llm.gateway import ChatMessage, LlmCallError, LlmRequest
from orchestration.llm.openai_provider import RETRY_WAIT_MAX_SECONDS, OpenAIGateway
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens
from orchestration.testing.fake_server import Step

SLACK = 1.0  # seconds of scheduling slack in timing assertions


def request(**overrides) -> LlmRequest:
    fields = {
        "model_alias": "deepseek",
        "provider_model": "deepseek/deepseek-chat",
        "messages": (ChatMessage("system", "You are Writer."), ChatMessage("user", "Open the story.")),
        "max_output_tokens": 128,
    }
    return LlmRequest(**{**fields, **overrides})


def failure(gateway: OpenAIGateway, req: LlmRequest | None = None) -> LlmCallError:
    with pytest.raises(LlmCallError) as caught:
        gateway.complete(req or request())
    return caught.value


def test_success_returns_reply_usage_cost_and_generation_id(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        Step(
            reply="Once upon a time.",
            usage={"prompt_tokens": 21, "completion_tokens": 5, "cost": 0.0000105},
        )
    )
    response = openai_gateway_make().complete(request())
    assert response.content == "Once upon a time."
    assert (response.input_tokens, response.output_tokens, response.tokens_estimated) == (21, 5, False)
    assert (response.provider_input_tokens, response.provider_output_tokens) == (21, 5)
    assert response.provider_cost_usd == Decimal("0.0000105")
    assert isinstance(response.provider_cost_usd, Decimal)
    assert response.generation_id.startswith("gen-fake-")
    assert response.provider_model == "deepseek/deepseek-chat"
    assert 0 <= response.latency_ms < 2000


def test_default_answer_reports_the_cost_the_server_will_report_for_the_generation(
    fake_llm, openai_gateway_make
):
    response = openai_gateway_make().complete(request())
    served = fake_llm.state.generations[response.generation_id]
    assert Decimal(str(served["total_cost"])) == response.provider_cost_usd > 0
    assert served["native_tokens_prompt"] == response.input_tokens


def test_sends_attribution_headers_usage_accounting_and_limits(fake_llm, openai_gateway_make):
    openai_gateway_make(temperature=0.3).complete(request())
    (sent,) = fake_llm.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["http-referer"] == REFERER
    assert sent.headers["x-title"] == TITLE
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["usage"] == {"include": True}
    assert sent.body["max_tokens"] == 128
    assert sent.body["temperature"] == 0.3
    assert sent.model == "deepseek/deepseek-chat"
    assert sent.messages == [
        {"role": "system", "content": "You are Writer."},
        {"role": "user", "content": "Open the story."},
    ]
    assert "response_format" not in sent.body


def test_json_mode_asks_for_a_json_object(fake_llm, openai_gateway_make):
    openai_gateway_make().complete(request(json_mode=True, purpose="routing"))
    assert fake_llm.requests[-1].body["response_format"] == {"type": "json_object"}


def test_missing_usage_is_estimated_with_tiktoken_and_flagged(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply="A short reply.", no_usage=True))
    req = request()
    response = openai_gateway_make().complete(req)
    assert response.tokens_estimated is True
    assert response.input_tokens == count_messages_tokens(m.content for m in req.messages)
    assert response.output_tokens == count_text_tokens("A short reply.")
    assert response.provider_input_tokens is None and response.provider_cost_usd is None


def test_invalid_usage_block_keeps_the_reply_and_estimates_tokens(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply="Still useful.", usage={"prompt_tokens": "many", "completion_tokens": 3}))
    response = openai_gateway_make().complete(request())
    assert response.content == "Still useful."
    assert response.tokens_estimated is True and isinstance(response.input_tokens, int)
    assert response.output_tokens == count_text_tokens("Still useful.")


@pytest.mark.parametrize(
    ("step", "code", "status"),
    [
        (Step(status=400), "provider_bad_request", 400),
        (Step(status=401), "provider_auth_error", 401),
        (Step(status=402), "provider_out_of_credits", 402),
        (Step(status=403), "provider_moderation", 403),
        (Step(status=404), "provider_bad_request", 404),
        (Step(status=408), "provider_unavailable", 408),
        (Step(status=429, retry_after=3), "provider_rate_limited", 429),
        (Step(status=500), "provider_unavailable", 500),
        (Step(status=502), "provider_unavailable", 502),
        (Step(status=503), "provider_unavailable", 503),
        (Step(error_in_body=True), "provider_error_in_body", None),
        (Step(malformed=True), "provider_malformed_response", None),
        (
            Step(raw_body="<html>Bad gateway</html>", content_type="text/html"),
            "provider_malformed_response",
            None,
        ),
        (Step(raw_body="[1, 2]"), "provider_malformed_response", None),
        (Step(raw_body='{"id": "x", "choices": "nope"}'), "provider_malformed_response", None),
        (Step(raw_body=""), "provider_malformed_response", None),
        (Step(empty_choices=True), "provider_empty_response", None),
        (Step(reply="   "), "provider_empty_response", None),
        (
            Step(raw_body='{"id": "x", "choices": [{"message": {"content": null}}]}'),
            "provider_empty_response",
            None,
        ),
    ],
)
def test_provider_faults_map_to_stable_codes(fake_llm, openai_gateway_make, step, code, status):
    fake_llm.enqueue(step)
    error = failure(openai_gateway_make())
    assert error.code == code
    assert error.http_status == status
    assert len(error.message) <= 200


def test_rate_limit_carries_retry_after(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=429, retry_after=7))
    error = failure(openai_gateway_make())
    assert (error.code, error.retry_after) == ("provider_rate_limited", 7.0)
    assert "rate limited" in error.message


def test_out_of_credits_is_logged_as_an_operator_problem(fake_llm, openai_gateway_make, caplog):
    fake_llm.enqueue(Step(status=402))
    with caplog.at_level(logging.WARNING, logger="orchestration.llm.openai_provider"):
        assert failure(openai_gateway_make()).code == "provider_out_of_credits"
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "operator" in record.getMessage()


def test_each_failure_is_logged_on_one_short_line(fake_llm, openai_gateway_make, caplog):
    fake_llm.enqueue(Step(raw_body="<html>" + "x" * 20_000 + "</html>", content_type="text/html"))
    with caplog.at_level(logging.WARNING, logger="orchestration.llm.openai_provider"):
        failure(openai_gateway_make())
    (record,) = caplog.records
    assert "provider_malformed_response" in record.getMessage()
    assert "\n" not in record.getMessage() and len(record.getMessage()) < 400


def test_error_in_a_200_body_keeps_generation_id_and_reported_usage(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        Step(error_in_body=True, usage={"prompt_tokens": 40, "completion_tokens": 7, "cost": 0.00002})
    )
    error = failure(openai_gateway_make())
    assert error.code == "provider_error_in_body"
    assert "mid-generation" in error.message
    assert error.generation_id.startswith("gen-fake-")
    assert (error.input_tokens, error.output_tokens) == (40, 7)
    assert error.extra["provider_cost_usd"] == Decimal("0.00002")


def test_finish_reason_error_is_an_error_in_the_body(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        Step(
            raw_body='{"id": "g1", "choices": [{"message": {"content": "Half a"}, "finish_reason": "error"}]}'
        )
    )
    error = failure(openai_gateway_make())
    assert (error.code, error.generation_id) == ("provider_error_in_body", "g1")


def test_slow_answer_times_out_within_the_bound(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(delay=3), Step(delay=3))
    timeout, retries = 0.5, 1
    started = time.monotonic()
    error = failure(openai_gateway_make(timeout=timeout, max_retries=retries))
    elapsed = time.monotonic() - started
    assert error.code == "provider_timeout"
    assert len(fake_llm.requests) == retries + 1  # the timeout was retried, once
    assert elapsed < timeout * (retries + 1) + retries * RETRY_WAIT_MAX_SECONDS + SLACK


def test_body_trickled_behind_keepalive_whitespace_is_cut_at_the_timeout(fake_llm, openai_gateway_make):
    # OpenRouter keeps a slow call alive with whitespace: each read succeeds, the call must not.
    fake_llm.enqueue(Step(keepalive=3.0, reply="far too late"))
    started = time.monotonic()
    error = failure(openai_gateway_make(timeout=0.5))
    assert error.code == "provider_timeout"
    assert time.monotonic() - started < 0.5 + SLACK


def test_body_trickled_within_the_timeout_is_accepted(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(keepalive=0.2, reply="worth the wait"))
    assert openai_gateway_make(timeout=2.0).complete(request()).content == "worth the wait"


def test_server_errors_are_retried(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=500), Step(reply="second time lucky"))
    response = openai_gateway_make(max_retries=1).complete(request())
    assert response.content == "second time lucky"
    assert len(fake_llm.requests) == 2


def test_retries_stop_at_max_retries(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=502), Step(status=503), Step(reply="never reached"))
    assert failure(openai_gateway_make(max_retries=1)).code == "provider_unavailable"
    assert len(fake_llm.requests) == 2


def test_client_errors_are_not_retried(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=400), Step(reply="never reached"))
    assert failure(openai_gateway_make(max_retries=2)).code == "provider_bad_request"
    assert len(fake_llm.requests) == 1


def test_short_retry_after_is_honoured_then_retried(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=429, retry_after=0.3), Step(reply="after the wait"))
    started = time.monotonic()
    response = openai_gateway_make(max_retries=1).complete(request())
    assert response.content == "after the wait"
    assert len(fake_llm.requests) == 2
    assert 0.3 <= time.monotonic() - started < 0.3 + SLACK


def test_long_retry_after_fails_at_once_instead_of_waiting(fake_llm, openai_gateway_make):
    # The SDK alone would sleep up to two minutes here, far past the turn's deadline.
    fake_llm.enqueue(Step(status=429, retry_after=30), Step(reply="never reached"))
    started = time.monotonic()
    error = failure(openai_gateway_make(max_retries=2))
    assert (error.code, error.retry_after) == ("provider_rate_limited", 30.0)
    assert len(fake_llm.requests) == 1
    assert time.monotonic() - started < SLACK


def test_unreachable_endpoint_is_a_connection_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = OpenAIGateway(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=1.0, max_retries=0)
    error = failure(gateway)
    assert error.code == "provider_connection_error"
    assert error.http_status is None


def test_model_scoped_steps_only_answer_their_model(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(model="qwen/qwen-2.5-72b-instruct", status=500))
    gateway = openai_gateway_make()
    assert gateway.complete(request()).content.startswith("Noted:")
    error = failure(gateway, request(provider_model="qwen/qwen-2.5-72b-instruct"))
    assert error.code == "provider_unavailable"


def test_calls_reuse_one_connection(fake_llm, openai_gateway_make):
    """Every call after the first rides the connection the first one opened (no handshake per call);
    the time it saves is measured by ``make bench``, not here."""
    gateway = openai_gateway_make()
    for _ in range(21):
        gateway.complete(request())
    ports = {r.client_port for r in fake_llm.requests}
    assert len(fake_llm.requests) == 21 and len(ports) == 1, ports


def test_usage_details_carry_cache_and_reasoning_parts(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply="Cached.", cached_tokens=9, cache_write_tokens=3, reasoning_tokens=2))
    response = openai_gateway_make().complete(request())
    parts = (response.cached_input_tokens, response.cache_write_tokens, response.reasoning_tokens)
    assert parts == (9, 3, 2)


def test_cache_write_reported_beside_the_details_is_read_too(fake_llm, openai_gateway_make):
    usage = {"prompt_tokens": 30, "completion_tokens": 4, "cache_write_tokens": 12}
    fake_llm.enqueue(Step(reply="Written.", usage=usage))
    response = openai_gateway_make().complete(request())
    parts = (response.cached_input_tokens, response.cache_write_tokens, response.reasoning_tokens)
    assert parts == (0, 12, 0)


def test_failed_call_keeps_the_parts_the_provider_reported(fake_llm, openai_gateway_make):
    usage = {"prompt_tokens": 30, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 20}}
    fake_llm.enqueue(Step(error_in_body=True, usage=usage))
    error = failure(openai_gateway_make())
    assert (error.input_tokens, error.cached_input_tokens) == (30, 20)
