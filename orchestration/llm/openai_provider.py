"""The real provider: the ``openai`` SDK against OpenRouter or any OpenAI-compatible endpoint.

Three things the SDK does not do by itself are done here:

- **Bounded waits between attempts.** The SDK honours ``Retry-After`` up to two minutes and backs off
  up to 8 s; here every wait is capped at ``RETRY_WAIT_MAX_SECONDS`` and a server asking for longer is
  not retried (the call fails at once, carrying the ``Retry-After``). That is what makes
  ``registry.gateway_call_deadline_seconds`` a real bound.
- **A wall clock per attempt.** httpx's timeout limits each socket read, not the request, so a server
  that keeps the connection alive by trickling whitespace (as OpenRouter does while a model is
  still working) would never time out. A response hook ends the attempt once it has run ``timeout``.
- **A validated body.** The SDK builds its response models without validation (a string where a token
  count belongs flows straight through), so the few fields Pantheon uses are validated with pydantic.

Streams (``stream``) read the SSE body themselves, chunk by chunk, validated the same way. They are
bounded by a first-chunk and an idle timeout (``watchdog``), not by the wall clock of the whole
call: a long answer is not a failure. The SDK retries a stream only before its body begins.
"""

import email.utils
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, NonNegativeInt, ValidationError

from orchestration.llm import idle_check
from orchestration.llm.gateway import LlmCallError, LlmRequest, LlmResponse
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens
from orchestration.llm.watchdog import Watch, watchdog

logger = logging.getLogger(__name__)
idle_check.install()

# Longest wait between two attempts of one call (the SDK's backoff or a server's Retry-After).
RETRY_WAIT_MAX_SECONDS = 2.0

STATUS_CODES = {
    400: "provider_bad_request",
    401: "provider_auth_error",
    402: "provider_out_of_credits",
    403: "provider_moderation",
    408: "provider_unavailable",
    429: "provider_rate_limited",
}
MESSAGE_LIMIT = 200
STREAM_IDLE_TIMEOUT_SECONDS = 30.0
# After ``[DONE]`` the body is read to its end, so the connection can serve the next call; a provider
# that leaves it open gets this long before it is cut (the reply is whole either way).
STREAM_DRAIN_SECONDS = 1.0
_ATTEMPT_STARTED = "pantheon.attempt_started"
_EVENT_STREAM = "text/event-stream"


class OpenAIGateway:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        max_retries: int,
        referer: str = "",
        title: str = "",
        temperature: float | None = None,
        stream_first_token_timeout: float | None = None,
        stream_idle_timeout: float = STREAM_IDLE_TIMEOUT_SECONDS,
    ) -> None:
        headers = {k: v for k, v in {"HTTP-Referer": referer, "X-Title": title}.items() if v}
        deadline = _AttemptDeadline(timeout)
        # Timeout and retries are always explicit: the SDK's defaults (600 s, 2 retries) could stack
        # a single call into many minutes.
        self.client = _BoundedRetryOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=headers,
            http_client=openai.DefaultHttpxClient(
                event_hooks={"request": [deadline.stamp], "response": [deadline.guard]}
            ),
        )
        self.temperature = temperature
        self.stream_first_token_timeout = (
            timeout if stream_first_token_timeout is None else stream_first_token_timeout
        )
        self.stream_idle_timeout = stream_idle_timeout
        # Until the body begins (connecting, waiting for the headers), a stream is bounded like any
        # attempt; reads of its body are left to the watchdog (see ``_stream_read``).
        self._stream_timeout = httpx2.Timeout(timeout, read=self.stream_first_token_timeout)

    def complete(self, request: LlmRequest) -> LlmResponse:
        started = time.perf_counter()
        raw = self._create(request, started, self._body(request))
        return _response_read(request, started, raw.content)

    def stream(self, request: LlmRequest, *, on_delta: Callable[[str], None]) -> LlmResponse:
        body = {
            **self._body(request),
            "stream": True,
            # The last chunk then carries the usage (and OpenRouter's cost).
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        response = self._create(request, started, body, stream=True).http_response
        if _content_type(response) != _EVENT_STREAM:
            # A provider that ignored ``stream`` answers in one body (bounded like ``complete``).
            try:
                content = response.read()
            except httpx2.TimeoutException as exc:
                raise _failure(request, started, "provider_timeout", "no complete answer in time") from exc
            except httpx2.HTTPError as exc:
                raise _failure(request, started, "provider_connection_error", type(exc).__name__) from exc
            answer = _response_read(request, started, content)
            on_delta(answer.content)
            return answer
        return _stream_read(
            request,
            started,
            response,
            on_delta,
            first_chunk_timeout=self.stream_first_token_timeout,
            idle_timeout=self.stream_idle_timeout,
        )

    def _body(self, request: LlmRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.provider_model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_output_tokens,
            # OpenRouter usage accounting: the response then carries usage.cost.
            "usage": {"include": True},
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if request.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _create(
        self, request: LlmRequest, started: float, body: dict[str, Any], *, stream: bool = False
    ) -> Any:
        """``POST /chat/completions`` through the SDK's client — its retries, timeouts and error
        types — with a body ready to send. The SDK's typed ``chat.completions.create`` would first
        walk every message through its request transformation (milliseconds per call, growing with
        the history), for a body that is already plain JSON. Returns the raw response; with
        ``stream`` it returns once the headers are in, the body unread."""
        options: dict[str, Any] = {
            "headers": {RAW_RESPONSE_HEADER: "true", "Content-Type": "application/json"},
        }
        if stream:
            options["timeout"] = self._stream_timeout
        try:
            return self.client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                content=json.dumps(body, ensure_ascii=False).encode(),
                options=options,
                stream=stream,
                stream_cls=openai.Stream[ChatCompletionChunk] if stream else None,
            )
        except openai.APITimeoutError as exc:
            raise _failure(request, started, "provider_timeout", "no complete answer in time") from exc
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            raise _failure(request, started, "provider_connection_error", cause) from exc
        except openai.APIStatusError as exc:
            raise _status_failure(request, started, exc) from exc


def _response_read(request: LlmRequest, started: float, content: bytes) -> LlmResponse:
    try:
        body = _ChatBody.model_validate_json(content)
    except ValidationError as exc:
        # A proxy's HTML page, a truncated body, a JSON array …: one line, not the whole dump.
        problem = exc.errors()[0]["msg"] if exc.errors() else "invalid body"
        raise _failure(request, started, "provider_malformed_response", problem) from exc
    usage = _usage_read(body.usage)
    generation_id = body.id or ""
    error = body.error or _choice_error(body.choices)
    if error:
        # OpenRouter: once generation has started, a failure arrives as HTTP 200 with an error object.
        raise _failure(
            request,
            started,
            "provider_error_in_body",
            _error_message(error),
            generation_id=generation_id,
            usage=usage,
        )
    reply = body.choices[0].message.content if body.choices and body.choices[0].message else None
    if not reply or not reply.strip():
        raise _failure(
            request,
            started,
            "provider_empty_response",
            "no choices" if not body.choices else "empty content",
            generation_id=generation_id,
            usage=usage,
        )
    return _response(request, started, reply, usage, generation_id, body.model)


def _response(
    request: LlmRequest,
    started: float,
    reply: str,
    usage: "_Usage | None",
    generation_id: str,
    model: str | None,
) -> LlmResponse:
    input_tokens, output_tokens, estimated = _token_counts(request, usage, reply)
    return LlmResponse(
        content=reply,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=estimated,
        latency_ms=_ms(started),
        generation_id=generation_id,
        provider_model=model or request.provider_model,
        provider_input_tokens=usage.prompt_tokens if usage else None,
        provider_output_tokens=usage.completion_tokens if usage else None,
        provider_cost_usd=usage.cost if usage else None,
        **(usage.parts() if usage else {}),
    )


def _token_counts(request: LlmRequest, usage: "_Usage | None", reply: str) -> tuple[int, int, bool]:
    """The provider's counts; each one it did not report is counted with tiktoken (and flagged)."""
    provider_in = usage.prompt_tokens if usage else None
    provider_out = usage.completion_tokens if usage else None
    input_tokens = provider_in
    if input_tokens is None:
        input_tokens = count_messages_tokens(m.content for m in request.messages)
    output_tokens = provider_out if provider_out is not None else count_text_tokens(reply)
    return input_tokens, output_tokens, provider_in is None or provider_out is None


def _stream_read(
    request: LlmRequest,
    started: float,
    response: httpx2.Response,
    on_delta: Callable[[str], None],
    *,
    first_chunk_timeout: float,
    idle_timeout: float,
) -> LlmResponse:
    """Reads an SSE body event by event, handing each piece of the reply to ``on_delta``.

    The watchdog cuts the stream unless its first chunk arrives within ``first_chunk_timeout`` of
    the attempt's start and then no more than ``idle_timeout`` passes between chunks (keep-alive
    comments do not count). Its clock is paused while a chunk is handled. The socket's own read
    timeout stays as a backstop, at the longer of the two (the headers were read within the first).
    A cut after the reply finished loses nothing but the usage that had yet to come (estimated).
    """
    timeouts = response.request.extensions.get("timeout")
    if isinstance(timeouts, dict):  # read when the body's first read starts: not yet
        timeouts["read"] = max(first_chunk_timeout, idle_timeout)
    attempt_started = response.request.extensions.get(_ATTEMPT_STARTED, time.monotonic())
    network = response.extensions.get("network_stream")
    watch = watchdog.watch(
        network.get_extra_info("socket") if network is not None else None,
        attempt_started + first_chunk_timeout,
    )
    response.stream = _WatchedStream(response.stream, watch)
    reply = _StreamedReply(request, started, on_delta)
    broken: httpx2.HTTPError | None = None
    try:
        for data in _sse_data(response.iter_lines()):
            watch.pause()
            reply.take(data)
            watch.arm(time.monotonic() + (STREAM_DRAIN_SECONDS if reply.done else idle_timeout))
    except httpx2.HTTPError as exc:  # the connection dropped, or the watchdog cut it
        broken = exc
    finally:
        watch.stop()
        response.close()
    if reply.error:
        # OpenRouter: once generation has started, a failure arrives as an ``error`` chunk.
        raise reply.failure("provider_error_in_body", _error_message(reply.error))
    if not reply.finished:
        if watch.fired or isinstance(broken, httpx2.TimeoutException):
            waited = (
                f"no chunk for {idle_timeout:g} s"
                if reply.chunks
                else f"no first chunk within {first_chunk_timeout:g} s"
            )
            raise reply.failure("provider_timeout", waited)
        cause = type(broken).__name__ if broken else "no finish and no [DONE]"
        raise reply.failure("provider_stream_cut", f"stream ended before the reply did ({cause})")
    content = reply.content
    if not content.strip():
        raise reply.failure("provider_empty_response", "empty content")
    return _response(request, started, content, reply.usage, reply.generation_id, reply.model)


class _StreamedReply:
    """What a stream has delivered so far."""

    def __init__(self, request: LlmRequest, started: float, on_delta: Callable[[str], None]) -> None:
        self.request = request
        self.started = started
        self.on_delta = on_delta
        self.parts: list[str] = []
        self.chunks = 0
        self.usage: _Usage | None = None
        self.generation_id = ""
        self.model: str | None = None
        self.error: Any = None
        self.finished = False  # a finish reason or ``[DONE]`` arrived: the reply is whole
        self.done = False

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def take(self, data: str) -> None:
        if self.done:
            return  # nothing counts after [DONE]; the rest is only drained
        self.chunks += 1
        if data.startswith("[DONE]"):
            self.done = self.finished = True
            return
        try:
            chunk = _Chunk.model_validate_json(data)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"] if exc.errors() else "invalid chunk"
            raise self.failure("provider_malformed_response", problem) from exc
        self.generation_id = self.generation_id or chunk.id or ""
        self.model = self.model or chunk.model
        if chunk.usage is not None:  # the last chunk's, normally after the finish
            self.usage = _usage_read(chunk.usage) or self.usage
        # After an error, read on only for a usage block: any content is not part of the reply.
        self.error = self.error or chunk.error or _choice_error(chunk.choices)
        if self.error or not chunk.choices:
            return
        choice = chunk.choices[0]
        text = choice.delta.content if choice.delta else None
        if text:
            self.parts.append(text)
            self.on_delta(text)
        if choice.finish_reason:
            self.finished = True

    def failure(self, code: str, message: str) -> LlmCallError:
        return _failure(
            self.request,
            self.started,
            code,
            message,
            generation_id=self.generation_id,
            usage=self.usage,
            partial_content=self.content,
        )


def _sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` of each Server-Sent Event (its ``data:`` lines joined); comments (``: ...``,
    OpenRouter's keep-alive) and other fields are skipped, and an event the stream did not finish
    is dropped, as the SSE specification says."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))


def _content_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


class _PromptDetails(BaseModel):
    cached_tokens: NonNegativeInt | None = None
    cache_write_tokens: NonNegativeInt | None = None


class _CompletionDetails(BaseModel):
    reasoning_tokens: NonNegativeInt | None = None


class _Usage(BaseModel):
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    # Parsed from the JSON number's text (pydantic), never through float arithmetic of ours.
    cost: Decimal | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    # Some providers report the cache write beside the details rather than inside them.
    cache_write_tokens: NonNegativeInt | None = None

    def parts(self) -> dict[str, int]:
        """The cache and reasoning parts, as ``LlmResponse`` and ``LlmCallError`` keep them."""
        prompt = self.prompt_tokens_details or _PromptDetails()
        completion = self.completion_tokens_details or _CompletionDetails()
        return {
            "cached_input_tokens": prompt.cached_tokens or 0,
            "cache_write_tokens": prompt.cache_write_tokens or self.cache_write_tokens or 0,
            "reasoning_tokens": completion.reasoning_tokens or 0,
        }


class _ChoiceEnd(BaseModel):
    finish_reason: str | None = None
    error: Any = None


class _Message(BaseModel):
    content: str | None = None


class _Choice(_ChoiceEnd):
    message: _Message | None = None


class _Delta(BaseModel):
    content: str | None = None


class _ChunkChoice(_ChoiceEnd):
    delta: _Delta | None = None


class _Envelope(BaseModel):
    id: str | None = None
    model: str | None = None
    # Validated on its own: a broken usage block makes the tokens estimated, not the reply lost.
    usage: dict[str, Any] | None = None
    error: Any = None


class _ChatBody(_Envelope):
    """The fields of a chat completion Pantheon relies on; everything else is ignored."""

    choices: list[_Choice] | None = None


class _Chunk(_Envelope):
    """The fields of one ``chat.completion.chunk`` of a stream Pantheon relies on."""

    choices: list[_ChunkChoice] | None = None


def _usage_read(raw: dict[str, Any] | None) -> _Usage | None:
    if raw is None:
        return None
    try:
        return _Usage.model_validate(raw)
    except ValidationError as exc:
        logger.warning("llm usage block invalid (%s); tokens will be estimated", exc.errors()[0]["msg"])
        return None


def _choice_error(choices: Iterable[_ChoiceEnd] | None) -> Any:
    """An error reported on the choice itself (``finish_reason: "error"``, OpenRouter)."""
    for choice in choices or ():
        if choice.error or choice.finish_reason == "error":
            return choice.error or "finish_reason=error"
    return None


def _status_failure(request: LlmRequest, started: float, exc: openai.APIStatusError) -> LlmCallError:
    status = exc.status_code
    code = STATUS_CODES.get(status) or ("provider_unavailable" if status >= 500 else "provider_bad_request")
    if code == "provider_out_of_credits":
        # Our account at the provider, not the user's credits: an operator has to top it up.
        logger.error(
            "LLM provider account is out of credits (HTTP 402, model=%s): operator action needed",
            request.provider_model,
        )
    return _failure(
        request,
        started,
        code,
        _error_message(exc.body) or exc.message,
        http_status=status,
        retry_after=_retry_after_seconds(exc.response.headers),
    )


def _failure(
    request: LlmRequest,
    started: float,
    code: str,
    message: str,
    *,
    http_status: int | None = None,
    retry_after: float | None = None,
    generation_id: str = "",
    usage: _Usage | None = None,
    partial_content: str = "",
) -> LlmCallError:
    message = " ".join(str(message).split())[:MESSAGE_LIMIT]
    if code != "provider_out_of_credits":  # already logged at ERROR
        logger.warning(
            "llm call failed code=%s status=%s model=%s purpose=%s: %s",
            code,
            http_status or "-",
            request.provider_model,
            request.purpose,
            message,
        )
    if partial_content:
        # Part of a reply streamed: generated, so paid for. What the provider did not report is
        # counted with tiktoken (input from the request, output from what arrived).
        input_tokens, output_tokens, estimated = _token_counts(request, usage, partial_content)
    else:
        # A failed call the provider still reported usage for may still be billed to us.
        input_tokens = (usage.prompt_tokens or 0) if usage else 0
        output_tokens = (usage.completion_tokens or 0) if usage else 0
        estimated = False
    return LlmCallError(
        code=code,
        message=message,
        http_status=http_status,
        retry_after=retry_after,
        latency_ms=_ms(started),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=estimated,
        partial_content=partial_content,
        generation_id=generation_id,
        **(usage.parts() if usage else {}),
        extra={"provider_cost_usd": usage.cost} if usage and usage.cost is not None else {},
    )


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        inner = error.get("error")
        if isinstance(inner, dict):
            error = inner
        return str(error.get("message") or error.get("code") or "")
    return "" if error is None else str(error)


def _retry_after_seconds(headers: httpx2.Headers) -> float | None:
    """``Retry-After`` in seconds: ``retry-after-ms``, a number of seconds or an HTTP date."""
    if milliseconds := headers.get("retry-after-ms"):
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class _BoundedRetryOpenAI(openai.OpenAI):
    """The SDK client with every wait between attempts capped at ``RETRY_WAIT_MAX_SECONDS``.

    Overrides two of the SDK's retry hooks (pinned by ``test_llm_openai_provider``): a server asking
    for a longer wait is not retried, and the SDK's own backoff never waits longer than the cap.
    """

    def _should_retry(self, response: httpx2.Response) -> bool:
        wait = _retry_after_seconds(response.headers)
        if wait is not None and wait > RETRY_WAIT_MAX_SECONDS:
            return False
        return super()._should_retry(response)

    def _calculate_retry_timeout(
        self, remaining_retries: int, options: Any, response_headers: httpx2.Headers | None = None
    ) -> float:
        wait = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        return min(wait, RETRY_WAIT_MAX_SECONDS)


class _AttemptDeadline:
    """httpx event hooks that end an attempt ``timeout`` seconds after it was sent, even while bytes
    keep arriving. The SDK sees an ordinary read timeout (retried or ``APITimeoutError``).

    An event stream is left alone: its bounds are the first-chunk and idle timeouts (a long answer
    streamed steadily is not a failure); the request stamp still dates its attempt."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def stamp(self, request: httpx2.Request) -> None:
        request.extensions[_ATTEMPT_STARTED] = time.monotonic()

    def guard(self, response: httpx2.Response) -> None:
        if _content_type(response) == _EVENT_STREAM:
            return
        started = response.request.extensions.get(_ATTEMPT_STARTED, time.monotonic())
        response.stream = _DeadlineStream(response.stream, started + self.timeout, response.request)


class _DeadlineStream(httpx2.SyncByteStream):
    def __init__(self, stream: Any, deadline: float, request: httpx2.Request) -> None:
        self._stream = stream
        self._deadline = deadline
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx2.ReadTimeout("response not complete within the timeout", request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _WatchedStream(httpx2.SyncByteStream):
    """A streamed body whose watch stops before the connection is released (to the pool or closed),
    so the watchdog can never cut a socket another request has taken over."""

    def __init__(self, stream: Any, watch: Watch) -> None:
        self._stream = stream
        self._watch = watch

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        self._watch.stop()
        self._stream.close()
