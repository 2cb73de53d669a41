"""One LLM call through the gateway, staged as a usage event: shared by turns and summaries."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from orchestration.llm.fallback import FALLOVER_CODES, attempts_plan, fallover_allowed
from orchestration.llm.gateway import LlmCallError, LlmGateway, LlmRequest, LlmResponse
from orchestration.llm.registry import gateway_for_deployment
from orchestration.llm.tokens import count_messages_tokens
from pantheon.db_connections import connection_release
from pantheon.observability import LlmCallObserved, LlmFallover, observe
from pantheon.work_gate import work_gate
from usage.cooldown import deployment_failure_record
from usage.models import LlmCallEvent
from usage.selectors import PricedDeployment, PricedModel
from usage.services.events import usage_event_stage

logger = logging.getLogger(__name__)


@dataclass
class CallLog:
    """The usage events staged so far (written later, with what they are for) and the LLM wait."""

    events: list[LlmCallEvent] = field(default_factory=list)
    llm_seconds: float = 0.0


@dataclass(frozen=True)
class CallScope:
    """Who a call is made for: copied onto its usage event."""

    user_id: int
    room_id: object = None
    session_id: object = None


def reply_clean(text: str) -> str:
    """A reply as it is stored: NUL characters removed (no database text column takes them), outer
    whitespace stripped. Streamed deltas, joined and cleaned the same way, equal the stored reply."""
    return text.replace("\x00", "").strip()


def llm_call_staged(
    *,
    gateway: LlmGateway,
    request: LlmRequest,
    model: PricedModel,
    log: CallLog,
    scope: CallScope,
    billable: bool = True,
    on_delta: Callable[[str], None] | None = None,
) -> str | None:
    """Make one call (streamed when ``on_delta`` is given); stage its event, succeeded or failed, in
    ``log``. Returns the cleaned reply, or None when the call produced none.

    The call goes to the model's deployments in order (``orchestration.llm.fallback``): a failure
    that is the provider's moves it to the next, each failed attempt staged as a failed, unbilled
    event naming its deployment and error; the last event staged is the call's outcome.

    Never raises for a provider failure: a failed call is a failed event, and the caller decides.
    """
    plan = attempts_plan(model.routes)
    if request.local_input_tokens is None:  # kept on each attempt's event, for the token calibration
        request = replace(
            request, local_input_tokens=count_messages_tokens(m.content for m in request.messages)
        )
    for number, route in enumerate(plan, start=1):
        delivered = False

        def relay(text: str) -> None:
            nonlocal delivered
            delivered = True
            on_delta(text)

        reply, code = _attempt(
            gateway=gateway,
            request=replace(request, provider_model=route.provider_model),
            route=route,
            model=model,
            log=log,
            scope=scope,
            billable=billable,
            on_delta=relay if on_delta is not None else None,
        )
        if code is None:
            return reply
        if route.name and code in FALLOVER_CODES:
            deployment_failure_record(route.name)
        if number == len(plan) or not fallover_allowed(code, delivered=delivered):
            return None
        logger.warning(
            "llm call falls over model=%s from=%s code=%s to=%s",
            model.alias,
            route.name or "-",
            code,
            plan[number].name or "-",
        )
        observe(
            LlmFallover(
                model_alias=model.alias,
                deployment=route.name,
                error_code=code,
                to_deployment=plan[number].name,
            )
        )
    return None


def _attempt(
    *,
    gateway: LlmGateway,
    request: LlmRequest,
    route: PricedDeployment,
    model: PricedModel,
    log: CallLog,
    scope: CallScope,
    billable: bool,
    on_delta: Callable[[str], None] | None,
) -> tuple[str | None, str | None]:
    """One deployment's try: (the cleaned reply, None) or (None, the error code)."""
    started = time.perf_counter()
    common = {
        "user_id": scope.user_id,
        "room_id": scope.room_id,
        "session_id": scope.session_id,
        "agent_key": request.agent_key,
        "purpose": request.purpose,
        "model_alias": model.alias,
        "provider_model": route.provider_model,
        "deployment": route.name,
        "local_input_tokens": request.local_input_tokens,
        "price": route.price,
        "billable": billable,
    }
    reply: str | None = None
    connection_release()  # no database connection held while the model thinks
    try:
        target = gateway_for_deployment(
            base_url=route.base_url, api_key_env=route.api_key_env, default=gateway
        )
        call = target.complete if on_delta is None else partial(target.stream, on_delta=on_delta)
        with work_gate().outside():  # other turns work while this one waits
            response = call(request)
    except Exception as raw:
        # A provider bug must not take the whole turn down: the call counts as failed.
        exc = raw if isinstance(raw, LlmCallError) else _unexpected(raw, started)
        logger.warning(
            "llm call failed purpose=%s agent=%s model=%s deployment=%s code=%s",
            request.purpose,
            request.agent_key or "-",
            model.alias,
            route.name or "-",
            exc.code,
        )
        event = usage_event_stage(
            **common,
            succeeded=False,
            error_code=exc.code,
            latency_ms=exc.latency_ms,
            input_tokens=exc.input_tokens,
            output_tokens=exc.output_tokens,
            cached_input_tokens=exc.cached_input_tokens,
            cache_write_tokens=exc.cache_write_tokens,
            reasoning_tokens=exc.reasoning_tokens,
            tokens_estimated=exc.tokens_estimated,
            generation_id=exc.generation_id,
        )
    else:
        reply = reply_clean(response.content) or None
        event = _event_of(response, common) if reply else _empty_reply_event(response, common)
    log.events.append(event)
    waited = time.perf_counter() - started
    log.llm_seconds += waited
    observe(
        LlmCallObserved(
            purpose=request.purpose,
            model_alias=model.alias,
            succeeded=event.status == LlmCallEvent.Status.SUCCEEDED,
            error_code=event.error_code,
            seconds=waited,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            cost_usd=event.cost_usd,
            credits=event.credits_burned,
            streamed=on_delta is not None,
            deployment=route.name,
        )
    )
    return reply, None if reply else event.error_code


def _event_of(response: LlmResponse, common: dict) -> LlmCallEvent:
    return usage_event_stage(
        **common,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        cached_input_tokens=response.cached_input_tokens,
        cache_write_tokens=response.cache_write_tokens,
        reasoning_tokens=response.reasoning_tokens,
        tokens_estimated=response.tokens_estimated,
        latency_ms=response.latency_ms,
        generation_id=response.generation_id,
        provider_input_tokens=response.provider_input_tokens,
        provider_output_tokens=response.provider_output_tokens,
        provider_cost_usd=response.provider_cost_usd,
    )


def _empty_reply_event(response: LlmResponse, common: dict) -> LlmCallEvent:
    """Only NUL characters or whitespace came back: the call is paid for but gave no reply."""
    logger.warning("llm reply empty once cleaned (model=%s)", common["model_alias"])
    return usage_event_stage(
        **common,
        succeeded=False,
        error_code="provider_empty_response",
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        cached_input_tokens=response.cached_input_tokens,
        cache_write_tokens=response.cache_write_tokens,
        reasoning_tokens=response.reasoning_tokens,
        tokens_estimated=response.tokens_estimated,
        latency_ms=response.latency_ms,
        generation_id=response.generation_id,
    )


def _unexpected(exc: Exception, started: float) -> LlmCallError:
    logger.exception("unexpected error from the LLM gateway: %s", type(exc).__name__)
    return LlmCallError(
        code="provider_error",
        message=type(exc).__name__,
        latency_ms=int((time.perf_counter() - started) * 1000),
    )
