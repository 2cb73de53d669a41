"""Streamed calls of the openai provider, through the real ``openai`` client against the fake server."""

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from orchestration.llm.gateway import LlmCallError, LlmRequest, LlmResponse
from orchestration.llm.offline import word_pieces
from orchestration.llm.openai_provider import OpenAIGateway
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens
from orchestration.testing.fake_server import Step
from orchestration.tests.llm.test_openai_provider import request

REPLY = "Once upon a time, a lighthouse kept the harbour."
SLOW_MODEL = "qwen/qwen-2.5-72b-instruct"


def streamed(gateway: OpenAIGateway, req: LlmRequest | None = None) -> tuple[LlmResponse, list[str]]:
    deltas: list[str] = []
    return gateway.stream(req or request(), on_delta=deltas.append), deltas


def stream_failure(gateway: OpenAIGateway, req: LlmRequest | None = None) -> tuple[LlmCallError, list[str]]:
    deltas: list[str] = []
    with pytest.raises(LlmCallError) as caught:
        gateway.stream(req or request(), on_delta=deltas.append)
    return caught.value, deltas


def sse(*events: str) -> Step:
    """A step answering with exactly these SSE events (a stream as some provider may send it)."""
    return Step(raw_body="".join(f"data: {e}\n\n" for e in events), content_type="text/event-stream")


def chunk(content: str | None = None, finish: str | None = None, **extra) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps({"id": "gen-raw", "choices": [{"delta": delta, "finish_reason": finish}], **extra})


# --- the reply and its usage ----------------------------------------------------------------------


def test_deltas_arrive_in_order_and_join_into_the_content(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY))
    response, deltas = streamed(openai_gateway_make())
    assert deltas == word_pieces(REPLY)
    assert "".join(deltas) == response.content == REPLY


def test_chunks_of_any_size_join_into_the_content_and_no_delta_is_empty(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, chunk_chars=7), Step(reply=REPLY, chunk_words=3))
    gateway = openai_gateway_make()
    by_chars, char_deltas = streamed(gateway)
    by_words, word_deltas = streamed(gateway)
    assert char_deltas == [REPLY[i : i + 7] for i in range(0, len(REPLY), 7)]
    assert len(word_deltas) == 3
    assert by_chars.content == by_words.content == REPLY


def test_empty_content_chunks_are_not_handed_on(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        sse(chunk(""), chunk("Hello"), chunk(""), chunk(" there"), chunk(finish="stop"), "[DONE]")
    )
    response, deltas = streamed(openai_gateway_make())
    assert deltas == ["Hello", " there"]
    assert response.content == "Hello there"


def test_content_is_passed_through_raw(fake_llm, openai_gateway_make):
    raw = "  Nul\x00 inside,\n\ttabs and trailing space "
    fake_llm.enqueue(Step(reply=raw, chunk_chars=4))
    response, deltas = streamed(openai_gateway_make())
    assert "".join(deltas) == response.content == raw


def test_usage_and_cost_come_from_the_last_chunk(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        Step(reply=REPLY, usage={"prompt_tokens": 21, "completion_tokens": 11, "cost": 0.0000105})
    )
    response, _ = streamed(openai_gateway_make())
    reported = (response.provider_input_tokens, response.provider_output_tokens, response.provider_cost_usd)
    assert reported == (21, 11, Decimal("0.0000105")) and isinstance(reported[2], Decimal)
    assert (response.input_tokens, response.output_tokens, response.tokens_estimated) == (21, 11, False)
    assert response.generation_id.startswith("gen-fake-")


def test_a_streamed_call_reports_what_the_same_call_in_one_piece_reports(fake_llm, openai_gateway_make):
    usage = {"prompt_tokens": 30, "completion_tokens": 12, "cost": 0.0000191}
    fake_llm.enqueue(Step(reply=REPLY, usage=usage), Step(reply=REPLY, usage=usage))
    gateway = openai_gateway_make()
    whole = gateway.complete(request())
    stream, _ = streamed(gateway)
    fields = (
        "content",
        "input_tokens",
        "output_tokens",
        "tokens_estimated",
        "provider_model",
        "provider_input_tokens",
        "provider_output_tokens",
        "provider_cost_usd",
    )
    assert {f: getattr(stream, f) for f in fields} == {f: getattr(whole, f) for f in fields}


def test_default_stream_reports_the_cost_the_server_will_report_for_the_generation(
    fake_llm, openai_gateway_make
):
    response, _ = streamed(openai_gateway_make())
    served = fake_llm.state.generations[response.generation_id]
    assert Decimal(str(served["total_cost"])) == response.provider_cost_usd > 0
    assert served["native_tokens_prompt"] == response.input_tokens


def test_asks_for_a_stream_with_usage_and_openrouter_usage_accounting(fake_llm, openai_gateway_make):
    streamed(openai_gateway_make(temperature=0.3), request(json_mode=True, purpose="routing"))
    (sent,) = fake_llm.requests
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["usage"] == {"include": True}
    assert sent.body["max_tokens"] == 128 and sent.body["temperature"] == 0.3
    assert sent.body["response_format"] == {"type": "json_object"}


def test_missing_usage_is_estimated_with_tiktoken_and_flagged(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, no_usage=True))
    req = request()
    response, _ = streamed(openai_gateway_make(), req)
    assert response.content == REPLY
    assert response.tokens_estimated is True
    assert response.input_tokens == count_messages_tokens(m.content for m in req.messages)
    assert response.output_tokens == count_text_tokens(REPLY)
    assert response.provider_input_tokens is None and response.provider_cost_usd is None


def test_invalid_usage_block_keeps_the_reply_and_estimates_tokens(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, usage={"prompt_tokens": "many", "completion_tokens": 3}))
    response, _ = streamed(openai_gateway_make())
    assert response.content == REPLY
    assert response.tokens_estimated is True
    assert response.output_tokens == count_text_tokens(REPLY)


def test_a_finished_stream_without_done_is_whole(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, done=False))
    response, _ = streamed(openai_gateway_make())
    assert response.content == REPLY and response.tokens_estimated is False


def test_a_provider_that_ignores_stream_answers_in_one_delta(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(raw_body='{"id": "g1", "choices": [{"message": {"content": "All at once."}}]}'))
    response, deltas = streamed(openai_gateway_make())
    assert deltas == ["All at once."] and response.content == "All at once."


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "code", "arrived_pieces"),
    [
        (Step(reply=REPLY, cut_after=3), "provider_stream_cut", 3),
        (Step(reply=REPLY, error_after=2), "provider_error_in_body", 2),
    ],
    ids=["cut", "error-chunk"],
)
def test_a_failure_after_content_carries_what_arrived_and_its_estimated_tokens(
    fake_llm, openai_gateway_make, step, code, arrived_pieces
):
    fake_llm.enqueue(step)
    req = request()
    error, deltas = stream_failure(openai_gateway_make(), req)
    arrived = "".join(word_pieces(REPLY)[:arrived_pieces])
    assert error.code == code
    assert "".join(deltas) == error.partial_content == arrived
    assert error.tokens_estimated is True
    assert error.input_tokens == count_messages_tokens(m.content for m in req.messages)
    assert error.output_tokens == count_text_tokens(arrived) > 0
    assert error.generation_id.startswith("gen-fake-")


def test_a_stream_that_ends_without_finish_or_done_is_cut(fake_llm, openai_gateway_make):
    fake_llm.enqueue(sse(chunk("Half"), chunk(" a reply")))
    error, deltas = stream_failure(openai_gateway_make())
    assert error.code == "provider_stream_cut"
    assert error.partial_content == "Half a reply" == "".join(deltas)


def test_a_cut_before_any_content_carries_no_tokens(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, cut_after=0))
    error, deltas = stream_failure(openai_gateway_make())
    assert error.code == "provider_stream_cut" and deltas == []
    assert (error.input_tokens, error.output_tokens, error.tokens_estimated) == (0, 0, False)


def test_error_object_mid_stream_carries_the_usage_the_provider_reported(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        Step(reply=REPLY, error_after=2, usage={"prompt_tokens": 40, "completion_tokens": 7, "cost": 0.00002})
    )
    error, _ = stream_failure(openai_gateway_make())
    assert error.code == "provider_error_in_body"
    assert (error.input_tokens, error.output_tokens, error.tokens_estimated) == (40, 7, False)
    assert error.extra["provider_cost_usd"] == Decimal("0.00002")
    assert error.generation_id.startswith("gen-fake-")


def test_usage_arriving_after_an_error_chunk_is_kept_and_later_content_dropped(fake_llm, openai_gateway_make):
    fake_llm.enqueue(
        sse(
            chunk("Begun"),
            chunk(finish="error", error={"message": "provider disconnected", "code": 502}),
            chunk(" ignored"),
            '{"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}',
            "[DONE]",
        )
    )
    error, deltas = stream_failure(openai_gateway_make())
    assert (error.code, error.message) == ("provider_error_in_body", "provider disconnected")
    assert deltas == ["Begun"] and error.partial_content == "Begun"
    assert (error.input_tokens, error.output_tokens, error.tokens_estimated) == (9, 2, False)


def test_finish_reason_error_alone_is_an_error_in_the_body(fake_llm, openai_gateway_make):
    fake_llm.enqueue(sse(chunk("Half"), chunk(finish="error"), "[DONE]"))
    error, _ = stream_failure(openai_gateway_make())
    assert (error.code, error.generation_id) == ("provider_error_in_body", "gen-raw")


@pytest.mark.parametrize(
    "events",
    [
        ("{not json",),
        ("[1, 2]",),
        ('{"choices": "nope"}',),
        ('{"choices": [{"delta": {"content": 42}}]}',),
    ],
)
def test_a_malformed_chunk_is_provider_malformed_response(fake_llm, openai_gateway_make, events):
    fake_llm.enqueue(sse(*events))
    error, deltas = stream_failure(openai_gateway_make())
    assert error.code == "provider_malformed_response" and deltas == []
    assert len(error.message) <= 200


def test_a_malformed_chunk_after_content_carries_the_partial_reply(fake_llm, openai_gateway_make):
    fake_llm.enqueue(sse(chunk("Good start"), "{broken"))
    error, _ = stream_failure(openai_gateway_make())
    assert error.code == "provider_malformed_response"
    assert error.partial_content == "Good start" and error.tokens_estimated is True
    assert error.output_tokens == count_text_tokens("Good start")


def test_the_fake_servers_malformed_stream_is_malformed(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(malformed=True))
    assert stream_failure(openai_gateway_make())[0].code == "provider_malformed_response"


@pytest.mark.parametrize("step", [Step(reply="   "), Step(reply=REPLY, empty_choices=True)])
def test_a_stream_without_content_is_provider_empty_response(fake_llm, openai_gateway_make, step):
    fake_llm.enqueue(step)
    assert stream_failure(openai_gateway_make())[0].code == "provider_empty_response"


@pytest.mark.parametrize(
    ("step", "code", "status"),
    [
        (Step(status=400), "provider_bad_request", 400),
        (Step(status=401), "provider_auth_error", 401),
        (Step(status=402), "provider_out_of_credits", 402),
        (Step(status=429, retry_after=3), "provider_rate_limited", 429),
        (Step(status=503), "provider_unavailable", 503),
    ],
)
def test_refusals_before_the_stream_map_to_the_codes_of_complete(
    fake_llm, openai_gateway_make, step, code, status
):
    fake_llm.enqueue(step)
    error, deltas = stream_failure(openai_gateway_make())
    assert (error.code, error.http_status, deltas) == (code, status, [])


def test_unreachable_endpoint_is_a_connection_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = OpenAIGateway(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=1.0, max_retries=0)
    assert stream_failure(gateway)[0].code == "provider_connection_error"


def test_an_exception_of_on_delta_ends_the_stream_and_propagates(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY))
    gateway = openai_gateway_make()

    class ReaderGone(Exception):
        pass

    def on_delta(text: str) -> None:
        raise ReaderGone

    with pytest.raises(ReaderGone):
        gateway.stream(request(), on_delta=on_delta)
    assert streamed(gateway)[0].content.startswith("Noted:")  # the gateway is still usable


# --- retries --------------------------------------------------------------------------------------


def test_a_stream_is_retried_before_it_begins(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(status=503), Step(reply=REPLY))
    response, deltas = streamed(openai_gateway_make(max_retries=1))
    assert response.content == REPLY == "".join(deltas)
    assert len(fake_llm.requests) == 2


def test_a_stream_is_never_retried_once_content_started(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, cut_after=2), Step(reply="never sent"))
    error, deltas = stream_failure(openai_gateway_make(max_retries=2))
    assert error.code == "provider_stream_cut"
    assert "".join(deltas) == "".join(word_pieces(REPLY)[:2])
    assert len(fake_llm.requests) == 1 and fake_llm.pending_steps == 1


# --- bounds: first chunk, idle, never the whole length ---------------------------------------------


def test_the_first_delta_reaches_the_caller_while_the_provider_holds_back_the_rest(
    fake_llm, openai_gateway_make
):
    # The server sends one chunk and waits for release(), which only this on_delta calls: the stream
    # completes only if that first chunk reached the caller before the provider sent anything more
    # (otherwise the gate gives up and cuts the stream).
    step = Step(reply=REPLY, gate_after=1, gate_timeout=5.0)
    fake_llm.enqueue(step)
    seen: list[tuple[str, bool]] = []

    def on_delta(text: str) -> None:
        seen.append((text, step.released.is_set()))
        step.release()

    response = openai_gateway_make(idle_timeout=10.0).stream(request(), on_delta=on_delta)
    assert seen[0] == ("Once", False)
    assert all(released for _, released in seen[1:])
    assert response.content == REPLY


def test_a_late_first_chunk_times_out(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, first_chunk_delay=3.0))
    error, deltas = stream_failure(openai_gateway_make(first_token_timeout=0.3))
    assert (error.code, deltas, error.output_tokens) == ("provider_timeout", [], 0)


def test_keepalive_comments_do_not_count_as_a_first_chunk(fake_llm, openai_gateway_make):
    # OpenRouter keeps a waiting stream open with ": OPENROUTER PROCESSING" comments.
    fake_llm.enqueue(Step(reply=REPLY, keepalive=3.0))
    error, deltas = stream_failure(openai_gateway_make(first_token_timeout=0.3))
    assert (error.code, deltas) == ("provider_timeout", [])


def test_keepalive_comments_before_a_timely_first_chunk_are_skipped(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, keepalive=0.2))
    response, _ = streamed(openai_gateway_make(first_token_timeout=2.0))
    assert response.content == REPLY


def test_late_headers_time_out_as_a_late_first_chunk(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, delay=3.0))
    error, _ = stream_failure(openai_gateway_make(first_token_timeout=0.3))
    assert error.code == "provider_timeout"


def test_silence_between_chunks_times_out_with_the_partial_reply(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, gate_after=2, gate_timeout=3.0))
    req = request()
    error, deltas = stream_failure(openai_gateway_make(idle_timeout=0.3), req)
    arrived = "".join(word_pieces(REPLY)[:2])
    assert error.code == "provider_timeout"
    assert "".join(deltas) == error.partial_content == arrived
    assert error.tokens_estimated is True
    assert error.output_tokens == count_text_tokens(arrived)
    assert error.input_tokens == count_messages_tokens(m.content for m in req.messages)


def test_a_slow_steady_stream_longer_than_the_call_timeout_succeeds(fake_llm, openai_gateway_make):
    # Six chunks 0.2 s apart: over a second in all, twice the call's 0.5 s timeout.
    fake_llm.enqueue(Step(reply="one two three four five six", chunk_delay=0.2))
    gateway = openai_gateway_make(timeout=0.5, first_token_timeout=2.0, idle_timeout=2.0)
    response, deltas = streamed(gateway)
    assert response.content == "one two three four five six" and len(deltas) == 6


def test_gaps_longer_than_the_first_chunk_timeout_are_fine_within_the_idle_timeout(
    fake_llm, openai_gateway_make
):
    fake_llm.enqueue(Step(reply="slow steady", chunk_delay=1.5))
    response, _ = streamed(openai_gateway_make(first_token_timeout=1.0, idle_timeout=3.0))
    assert response.content == "slow steady"


def test_time_spent_in_on_delta_is_not_provider_silence(fake_llm, openai_gateway_make):
    # Chunks 0.3 s apart (within the 1 s idle timeout); the caller takes 1.4 s over the second one,
    # while the provider is still sending: only the provider's silence counts.
    reply = "one two three four five six seven eight"
    fake_llm.enqueue(Step(reply=reply, chunk_delay=0.3))
    deltas: list[str] = []

    def slow_reader(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 2:
            time.sleep(1.4)

    response = openai_gateway_make(idle_timeout=1.0).stream(request(), on_delta=slow_reader)
    assert response.content == reply == "".join(deltas)


def test_streams_read_to_their_end_reuse_one_connection(fake_llm, openai_gateway_make):
    gateway = openai_gateway_make()
    for _ in range(3):
        streamed(gateway)
    assert len({r.client_port for r in fake_llm.requests}) == 1


def test_a_timed_out_stream_leaves_the_gateway_usable(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, gate_after=1, gate_timeout=3.0))
    gateway = openai_gateway_make(idle_timeout=1.0)
    assert stream_failure(gateway)[0].code == "provider_timeout"
    for _ in range(3):
        assert streamed(gateway)[0].content.startswith("Noted:")


def test_concurrent_streams_time_out_alone(fake_llm, openai_gateway_make):
    # The slow model's four calls never send a chunk (a gate nobody releases in time).
    gated = [Step(model=SLOW_MODEL, gate_after=0, gate_timeout=10.0) for _ in range(4)]
    fake_llm.enqueue(*gated)
    gateway = openai_gateway_make(first_token_timeout=2.0)

    def call(index: int) -> str:
        slow = index % 2 == 0
        req = request(provider_model=SLOW_MODEL if slow else "deepseek/deepseek-chat")
        try:
            return streamed(gateway, req)[0].content
        except LlmCallError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(call, range(8)))
    for step in gated:
        step.release()  # let the server's threads go
    assert outcomes[0::2] == ["provider_timeout"] * 4
    assert outcomes[1::2] == ["Noted: Open the story."] * 4


def test_streamed_usage_carries_cache_and_reasoning_parts(fake_llm, openai_gateway_make):
    fake_llm.enqueue(Step(reply=REPLY, cached_tokens=7, cache_write_tokens=1, reasoning_tokens=4))
    response, deltas = streamed(openai_gateway_make())
    assert "".join(deltas) == REPLY
    assert (response.cached_input_tokens, response.cache_write_tokens, response.reasoning_tokens) == (7, 1, 4)
