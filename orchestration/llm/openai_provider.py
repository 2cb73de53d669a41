"""The real provider: the ``openai`` SDK against OpenRouter or any OpenAI-compatible endpoint."""

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import openai
from openai import OpenAI

from orchestration.llm.gateway import LlmCallError, LlmRequest, LlmResponse
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens

logger = logging.getLogger(__name__)

STATUS_CODES = {
    400: "provider_bad_request",
    401: "provider_auth_error",
    402: "provider_out_of_credits",
    403: "provider_moderation",
    408: "provider_unavailable",
    429: "provider_rate_limited",
}


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
        # Timeout and retries are always explicit: the SDK's defaults (600 s, 2 retries) could
        # stack a single call into many minutes.
        self.client = OpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=headers,
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
            completion = self.client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise self._fail(request, started, "provider_timeout", str(exc)) from exc
        except openai.APIConnectionError as exc:
            raise self._fail(request, started, "provider_connection_error", str(exc)) from exc
        except openai.APIStatusError as exc:
            code = STATUS_CODES.get(exc.status_code, "provider_unavailable")
            retry_after = _retry_after(exc.response.headers.get("retry-after"))
            if code == "provider_out_of_credits":
                logger.error("LLM provider account is out of credits: top it up (operator action needed)")
            raise self._fail(request, started, code, exc.message, exc.status_code, retry_after) from exc
        except openai.APIResponseValidationError as exc:
            raise self._fail(
                request, started, "provider_malformed_response", "invalid response body"
            ) from exc
        except (ValueError, openai.APIError) as exc:  # a body that is not JSON
            raise self._fail(request, started, "provider_malformed_response", type(exc).__name__) from exc
        latency_ms = _ms(started)

        extra = completion.model_extra or {}
        if extra.get("error"):
            error = extra["error"] if isinstance(extra["error"], dict) else {"message": str(extra["error"])}
            raise self._fail(
                request,
                started,
                "provider_error_in_body",
                str(error.get("message", ""))[:200],
                generation_id=completion.id or "",
            )
        content = completion.choices[0].message.content if completion.choices else None
        if not content or not content.strip():
            raise self._fail(
                request, started, "provider_empty_response", "", generation_id=completion.id or ""
            )

        usage = completion.usage
        provider_in = usage.prompt_tokens if usage else None
        provider_out = usage.completion_tokens if usage else None
        estimated = provider_in is None or provider_out is None
        input_tokens = (
            provider_in
            if provider_in is not None
            else count_messages_tokens(m.content for m in request.messages)
        )
        output_tokens = provider_out if provider_out is not None else count_text_tokens(content)
        return LlmResponse(
            content=content,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tokens_estimated=estimated,
            latency_ms=latency_ms,
            generation_id=completion.id or "",
            provider_model=completion.model or request.provider_model,
            provider_input_tokens=provider_in,
            provider_output_tokens=provider_out,
            provider_cost_usd=_decimal((usage.model_extra or {}).get("cost")) if usage else None,
        )

    @staticmethod
    def _fail(
        request: LlmRequest,
        started: float,
        code: str,
        message: str,
        http_status: int | None = None,
        retry_after: float | None = None,
        generation_id: str = "",
    ) -> LlmCallError:
        logger.warning(
            "llm call failed code=%s status=%s model=%s purpose=%s: %s",
            code,
            http_status,
            request.provider_model,
            request.purpose,
            message[:200],
        )
        return LlmCallError(
            code=code,
            message=message[:500],
            http_status=http_status,
            retry_after=retry_after,
            latency_ms=_ms(started),
            generation_id=generation_id,
        )


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    """Provider cost as Decimal, through its text form (never float arithmetic)."""
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
