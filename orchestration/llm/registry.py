"""Which gateway serves LLM calls, from settings; and how long one call may take at worst."""

import os
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orchestration.llm.gateway import LlmCallError, LlmGateway
from orchestration.llm.offline import OfflineGateway
from orchestration.llm.openai_provider import RETRY_WAIT_MAX_SECONDS, OpenAIGateway

PROVIDERS = ("offline", "openai")


def gateway_get() -> LlmGateway:
    """The configured gateway: one instance per configuration, so HTTP connections are reused (and a
    test that changes the settings gets a gateway for its own)."""
    return _gateway_for(
        provider=settings.LLM_PROVIDER,
        base_url=settings.LLM_BASE_URL,
        api_key=settings.LLM_API_KEY,
        **_call_settings(),
    )


def _call_settings() -> dict:
    """The settings every gateway of this configuration shares, whatever its endpoint."""
    return {
        "timeout": float(settings.LLM_TIMEOUT_SECONDS),
        "max_retries": int(settings.LLM_MAX_RETRIES),
        "referer": settings.LLM_HTTP_REFERER,
        "title": settings.LLM_APP_TITLE,
        "temperature": settings.LLM_TEMPERATURE,
        "stream_first_token_timeout": _stream_first_token_timeout(),
        "stream_idle_timeout": float(settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS),
    }


def gateway_for_deployment(*, base_url: str, api_key_env: str, default: LlmGateway) -> LlmGateway:
    """The gateway of a deployment: ``default`` when it names no endpoint or key of its own (or the
    provider is offline, which has none), else the openai provider at its URL with the key read
    from the environment variable it names. Raises ``LlmCallError`` (``deployment_misconfigured``)
    when that variable is not set: the call falls over to the next deployment."""
    if settings.LLM_PROVIDER == "offline" or not (base_url or api_key_env):
        return default
    api_key = os.environ.get(api_key_env, "") if api_key_env else settings.LLM_API_KEY
    if not api_key:
        raise LlmCallError(code="deployment_misconfigured", message=f"{api_key_env} is not set")
    return _gateway_for(
        provider="openai",
        base_url=base_url or settings.LLM_BASE_URL,
        api_key=api_key,
        **_call_settings(),
    )


@lru_cache(maxsize=32)
def _gateway_for(
    *,
    provider: str,
    base_url: str,
    api_key: str,
    timeout: float,
    max_retries: int,
    referer: str,
    title: str,
    temperature: float | None,
    stream_first_token_timeout: float,
    stream_idle_timeout: float,
) -> LlmGateway:
    if provider == "offline":
        return OfflineGateway()
    if provider == "openai":
        required = {"LLM_BASE_URL": base_url, "LLM_API_KEY": api_key}
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise ImproperlyConfigured(
                f"LLM_PROVIDER=openai needs {' and '.join(missing)} (or set OPENROUTER_API_KEY)."
            )
        if timeout <= 0 or max_retries < 0:
            raise ImproperlyConfigured("LLM_TIMEOUT_SECONDS must be > 0 and LLM_MAX_RETRIES >= 0.")
        if stream_first_token_timeout <= 0 or stream_idle_timeout <= 0:
            raise ImproperlyConfigured(
                "LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS and LLM_STREAM_IDLE_TIMEOUT_SECONDS must be > 0."
            )
        return OpenAIGateway(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            referer=referer,
            title=title,
            temperature=temperature,
            stream_first_token_timeout=stream_first_token_timeout,
            stream_idle_timeout=stream_idle_timeout,
        )
    raise ImproperlyConfigured(f"Unknown LLM_PROVIDER {provider!r}: use one of {', '.join(PROVIDERS)}.")


def gateway_call_deadline_seconds() -> float:
    """The longest one gateway call can take, retries included:

        LLM_TIMEOUT_SECONDS × (LLM_MAX_RETRIES + 1) + LLM_MAX_RETRIES × RETRY_WAIT_MAX_SECONDS

    Every attempt is cut at the timeout (the read timeout while waiting, the provider's attempt
    guard while a body trickles in), and the provider caps each wait between attempts at
    ``RETRY_WAIT_MAX_SECONDS`` (2 s), refusing to retry when a ``Retry-After`` asks for longer.
    E.g. 30 s and 1 retry → 62 s. The turn engine bounds a turn and its session claim with it.
    The offline provider answers in microseconds; the same figure is used so nothing depends on
    which provider is configured.
    """
    retries = int(settings.LLM_MAX_RETRIES)
    attempt = float(settings.LLM_TIMEOUT_SECONDS) * (retries + 1) + retries * RETRY_WAIT_MAX_SECONDS
    return attempt * gateway_deployments_max()


def gateway_deployments_max() -> int:
    """How many deployments one call may try (``LLM_FALLBACK_MAX_ATTEMPTS``): every bound of a call
    is one deployment's times this, so a call that falls over stays within its claim."""
    return max(int(settings.LLM_FALLBACK_MAX_ATTEMPTS), 1)


def gateway_stream_first_chunk_deadline_seconds() -> float:
    """The longest a streamed call can wait for its first chunk, retries included:

        first-token timeout × (LLM_MAX_RETRIES + 1) + LLM_MAX_RETRIES × RETRY_WAIT_MAX_SECONDS

    The SDK retries a stream only before its body begins. Once chunks flow there is no bound on the
    whole call, only on the silence between two chunks (``gateway_stream_idle_bound_seconds``): a
    claim held across a stream is kept alive by its chunks, not sized for the longest answer.
    """
    retries = int(settings.LLM_MAX_RETRIES)
    attempt = _stream_first_token_timeout() * (retries + 1) + retries * RETRY_WAIT_MAX_SECONDS
    return attempt * gateway_deployments_max()


def gateway_stream_idle_bound_seconds() -> float:
    """The longest a streamed call stays silent between two chunks before it fails."""
    return float(settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS)


def gateway_call_quiet_bound_seconds() -> float:
    """The longest one call, plain or streamed, can go without a sign of progress: a plain call's
    deadline, a stream's wait for its first chunk, a stream's silence between two chunks. A session
    claim sized and renewed by it is never lost while a call is still working."""
    return max(
        gateway_call_deadline_seconds(),
        gateway_stream_first_chunk_deadline_seconds(),
        gateway_stream_idle_bound_seconds(),
    )


def _stream_first_token_timeout() -> float:
    first_token = settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS
    return float(settings.LLM_TIMEOUT_SECONDS if first_token is None else first_token)
