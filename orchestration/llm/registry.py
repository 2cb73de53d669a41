"""Which gateway serves LLM calls, from settings; and how long one call may take at worst."""

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orchestration.llm.gateway import LlmGateway

# Allowance for the SDK's exponential backoff between retries (0.5 s doubling, capped at 8 s).
RETRY_BACKOFF_ALLOWANCE_SECONDS = 2.0


def gateway_get() -> LlmGateway:
    """The configured gateway (one instance per configuration, so HTTP connections are reused)."""
    return _gateway_for(
        settings.LLM_PROVIDER,
        settings.LLM_BASE_URL,
        settings.LLM_API_KEY,
        settings.LLM_TIMEOUT_SECONDS,
        settings.LLM_MAX_RETRIES,
        settings.LLM_TEMPERATURE,
    )


@lru_cache(maxsize=8)
def _gateway_for(
    provider: str, base_url: str, api_key: str, timeout: float, max_retries: int, temperature: float
) -> LlmGateway:
    if provider == "offline":
        from orchestration.llm.offline import OfflineGateway

        return OfflineGateway()
    if provider == "openai":
        if not base_url or not api_key:
            raise ImproperlyConfigured(
                "LLM_PROVIDER=openai needs LLM_BASE_URL and LLM_API_KEY (or OPENROUTER_API_KEY)."
            )
        from orchestration.llm.openai_provider import OpenAIGateway

        return OpenAIGateway(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            referer=settings.LLM_HTTP_REFERER,
            title=settings.LLM_APP_TITLE,
            temperature=temperature,
        )
    raise ImproperlyConfigured(f"Unknown LLM_PROVIDER {provider!r}: use 'offline' or 'openai'.")


def gateway_call_deadline_seconds() -> float:
    """Worst case for one call: every attempt times out, plus the backoff between attempts:
    ``timeout × (max_retries + 1) + max_retries × RETRY_BACKOFF_ALLOWANCE_SECONDS``."""
    retries = settings.LLM_MAX_RETRIES
    return settings.LLM_TIMEOUT_SECONDS * (retries + 1) + retries * RETRY_BACKOFF_ALLOWANCE_SECONDS
