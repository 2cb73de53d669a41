"""One LLM call through the gateway, staged as a usage event: shared by turns and summaries."""

import logging
import time
from dataclasses import dataclass, field

from orchestration.llm.gateway import LlmCallError, LlmGateway, LlmRequest
from pantheon.observability import LlmCallObserved, observe
from usage.models import LlmCallEvent
from usage.selectors import PricedModel
from usage.services.events import usage_event_stage

logger = logging.getLogger(__name__)


@dataclass
class CallLog:
    """The usage events staged so far (written later, with what they are for) and the LLM wait."""

    events: list[LlmCallEvent] = field(default_factory=list)
    llm_seconds: float = 0.0


def llm_call_staged(
    *,
    gateway: LlmGateway,
    request: LlmRequest,
    model: PricedModel,
    log: CallLog,
    user_id: int,
    room_id,
    session_id,
    agent_key: str = "",
    billable: bool = True,
) -> str | None:
    """Make one call; stage its event (succeeded or failed) in ``log``. Returns the reply or None.

    Never raises for a provider failure: a failed call is a failed event, and the caller decides.
    """
    started = time.perf_counter()
    common = {
        "user_id": user_id,
        "purpose": request.purpose,
        "model_alias": model.alias,
        "provider_model": model.provider_model,
        "price": model.price,
        "billable": billable,
        "room_id": room_id,
        "session_id": session_id,
        "agent_key": agent_key,
    }
    try:
        response = gateway.complete(request)
    except Exception as raw:
        # A provider bug must not take the whole turn down: the call counts as failed.
        exc = raw if isinstance(raw, LlmCallError) else _unexpected(raw, started)
        logger.warning(
            "llm call failed purpose=%s agent=%s model=%s code=%s",
            request.purpose,
            agent_key or "-",
            model.alias,
            exc.code,
        )
        log.events.append(
            usage_event_stage(
                **common,
                succeeded=False,
                error_code=exc.code,
                latency_ms=exc.latency_ms,
                input_tokens=exc.input_tokens,
                output_tokens=exc.output_tokens,
                generation_id=exc.generation_id,
            )
        )
        _waited(log, started, request)
        return None
    log.events.append(
        usage_event_stage(
            **common,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            tokens_estimated=response.tokens_estimated,
            latency_ms=response.latency_ms,
            generation_id=response.generation_id,
            provider_input_tokens=response.provider_input_tokens,
            provider_output_tokens=response.provider_output_tokens,
            provider_cost_usd=response.provider_cost_usd,
        )
    )
    _waited(log, started, request)
    return response.content


def _unexpected(exc: Exception, started: float) -> LlmCallError:
    logger.exception("unexpected error from the LLM gateway: %s", type(exc).__name__)
    return LlmCallError(
        code="provider_error",
        message=type(exc).__name__,
        latency_ms=int((time.perf_counter() - started) * 1000),
    )


def _waited(log: CallLog, started: float, request: LlmRequest) -> None:
    waited = time.perf_counter() - started
    log.llm_seconds += waited
    event = log.events[-1]
    observe(
        LlmCallObserved(
            purpose=request.purpose,
            model_alias=event.model_alias,
            succeeded=event.status == "succeeded",
            error_code=event.error_code,
            seconds=waited,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            cost_usd=event.cost_usd,
            credits=event.credits_burned,
        )
    )
