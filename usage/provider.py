"""The provider's own record of a generation (OpenRouter's ``GET /generation?id=…``)."""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

logger = logging.getLogger(__name__)


class ProviderLookupError(Exception):
    """The provider could not be asked (network, 5xx, bad body): try again later."""


# What the provider commands (catalog_sync, reconcile_usage) say before exiting 1 without one.
NO_PROVIDER = "No provider is configured (set OPENROUTER_API_KEY or LLM_BASE_URL + LLM_API_KEY)."


def provider_lookup_configured() -> bool:
    return settings.LLM_PROVIDER == "openai" and bool(settings.LLM_BASE_URL and settings.LLM_API_KEY)


def provider_host() -> str:
    """The provider's host (and port), to name it in messages."""
    return urllib.parse.urlsplit(settings.LLM_BASE_URL).netloc or settings.LLM_BASE_URL


def _provider_get_json(path: str, *, params: dict | None = None, timeout: float | None = None):
    """GET a JSON document from the provider's API (numbers parsed as Decimal); None on a 404.

    A failure is a ``ProviderLookupError`` that names the host and the reason (refused, timed out,
    the HTTP status, a body that is not JSON), never just the exception's class.
    """
    url = settings.LLM_BASE_URL.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {settings.LLM_API_KEY}"})  # noqa: S310
    timeout = timeout or settings.LLM_TIMEOUT_SECONDS
    where = f"GET {provider_host()}{urllib.parse.urlsplit(url).path}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read(), parse_float=Decimal)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ProviderLookupError(f"{where}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise ProviderLookupError(f"{where}: {reason}") from exc
    except TimeoutError as exc:
        raise ProviderLookupError(f"{where}: no answer within {timeout:g} s") from exc
    except ValueError as exc:
        raise ProviderLookupError(f"{where}: the answer is not JSON ({exc})") from exc


# OpenRouter's native token counts of a generation, by the part of an event they compare with.
NATIVE_COUNTS = {
    "input": "native_tokens_prompt",
    "output": "native_tokens_completion",
    "cached_input": "native_tokens_cached",
    "reasoning": "native_tokens_reasoning",
}


@dataclass(frozen=True)
class GenerationRecord:
    """The provider's own record of a generation: its final cost and the token counts it reported
    (by part, see ``NATIVE_COUNTS``; a part it did not report is absent)."""

    total_cost: Decimal
    tokens: dict[str, int]


def generation_get(*, generation_id: str, timeout: float | None = None) -> GenerationRecord | None:
    """The provider's record of a generation, or None if it knows none."""
    body = _provider_get_json("/generation", params={"id": generation_id}, timeout=timeout)
    data = (body.get("data") or {}) if isinstance(body, dict) else {}
    cost = data.get("total_cost")
    if cost is None:
        return None
    tokens = {
        part: int(data[name])
        for part, name in NATIVE_COUNTS.items()
        if isinstance(data.get(name), int | Decimal) and data[name] >= 0
    }
    return GenerationRecord(total_cost=Decimal(str(cost)), tokens=tokens)


def provider_models_get(*, timeout: float | None = None) -> dict[str, dict]:
    """The provider's model list (OpenRouter's ``GET /models``), by model id."""
    body = _provider_get_json("/models", timeout=timeout)
    if not isinstance(body, dict):
        raise ProviderLookupError(f"GET {provider_host()}/models: the provider lists no models")
    return {m["id"]: m for m in body.get("data", []) if isinstance(m, dict) and m.get("id")}
