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
"""

import email.utils
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2
import openai
from pydantic import BaseModel, NonNegativeInt, ValidationError

from orchestration.llm.gateway import LlmCallError, LlmRequest, LlmResponse
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens

logger = logging.getLogger(__name__)

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
_ATTEMPT_STARTED = "pantheon.attempt_started"


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

    def complete(self, request: LlmRequest) -> LlmResponse:
        kwargs: dict[str, Any] = {
            "model": request.provider_model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_output_tokens,
            # OpenRouter usage accounting: the response then carries usage.cost.
            "extra_body": {"usage": {"include": True}},
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if request.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        try:
            raw = self.client.chat.completions.with_raw_response.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise _failure(request, started, "provider_timeout", "no complete answer in time") from exc
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            raise _failure(request, started, "provider_connection_error", cause) from exc
        except openai.APIStatusError as exc:
            raise _status_failure(request, started, exc) from exc
        return _response_read(request, started, raw.content)


def _response_read(request: LlmRequest, started: float, content: bytes) -> LlmResponse:
    try:
        body = _ChatBody.model_validate_json(content)
    except ValidationError as exc:
        # A proxy's HTML page, a truncated body, a JSON array …: one line, not the whole dump.
        problem = exc.errors()[0]["msg"] if exc.errors() else "invalid body"
        raise _failure(request, started, "provider_malformed_response", problem) from exc
    usage = _usage_read(body.usage)
    generation_id = body.id or ""
    error = body.error or _choice_error(body)
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
    provider_in = usage.prompt_tokens if usage else None
    provider_out = usage.completion_tokens if usage else None
    return LlmResponse(
        content=reply,
        input_tokens=(
            provider_in
            if provider_in is not None
            else count_messages_tokens(m.content for m in request.messages)
        ),
        output_tokens=provider_out if provider_out is not None else count_text_tokens(reply),
        tokens_estimated=provider_in is None or provider_out is None,
        latency_ms=_ms(started),
        generation_id=generation_id,
        provider_model=body.model or request.provider_model,
        provider_input_tokens=provider_in,
        provider_output_tokens=provider_out,
        provider_cost_usd=usage.cost if usage else None,
    )


class _Usage(BaseModel):
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    # Parsed from the JSON number's text (pydantic), never through float arithmetic of ours.
    cost: Decimal | None = None


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message | None = None
    finish_reason: str | None = None
    error: Any = None


class _ChatBody(BaseModel):
    """The fields of a chat completion Pantheon relies on; everything else is ignored."""

    id: str | None = None
    model: str | None = None
    choices: list[_Choice] | None = None
    # Validated on its own: a broken usage block makes the tokens estimated, not the reply lost.
    usage: dict[str, Any] | None = None
    error: Any = None


def _usage_read(raw: dict[str, Any] | None) -> _Usage | None:
    if raw is None:
        return None
    try:
        return _Usage.model_validate(raw)
    except ValidationError as exc:
        logger.warning("llm usage block invalid (%s); tokens will be estimated", exc.errors()[0]["msg"])
        return None


def _choice_error(body: _ChatBody) -> Any:
    """An error reported on the choice itself (``finish_reason: "error"``, OpenRouter)."""
    for choice in body.choices or ():
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
    return LlmCallError(
        code=code,
        message=message,
        http_status=http_status,
        retry_after=retry_after,
        latency_ms=_ms(started),
        # A failed call the provider still reported usage for may still be billed to us.
        input_tokens=(usage.prompt_tokens or 0) if usage else 0,
        output_tokens=(usage.completion_tokens or 0) if usage else 0,
        generation_id=generation_id,
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
    keep arriving. The SDK sees an ordinary read timeout (retried or ``APITimeoutError``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def stamp(self, request: httpx2.Request) -> None:
        request.extensions[_ATTEMPT_STARTED] = time.monotonic()

    def guard(self, response: httpx2.Response) -> None:
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
