"""The one interface every LLM call goes through.

A provider takes an ``LlmRequest`` and returns an ``LlmResponse`` or raises ``LlmCallError``. It never
touches the database: metering happens in the caller, with the figures returned here.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

Purpose = Literal["agent_reply", "routing", "summary", "extraction"]


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LlmRequest:
    model_alias: str
    provider_model: str
    messages: tuple[ChatMessage, ...]
    max_output_tokens: int
    purpose: Purpose = "agent_reply"
    # Ask for a JSON object (routing and summary stages).
    json_mode: bool = False
    # Who is speaking, for the offline provider's voice and for logs; providers may ignore it.
    agent_key: str = ""
    agent_name: str = ""


@dataclass(frozen=True)
class LlmResponse:
    content: str
    input_tokens: int
    output_tokens: int
    # True when the provider did not report usage and the counts were estimated with tiktoken.
    tokens_estimated: bool
    latency_ms: int
    generation_id: str = ""
    provider_model: str = ""
    # The provider's own figures, kept beside ours for reconciliation (None when not reported).
    provider_input_tokens: int | None = None
    provider_output_tokens: int | None = None
    provider_cost_usd: Decimal | None = None


@dataclass
class LlmCallError(Exception):
    """A call that produced no usable reply. ``code`` is stable and stored on the usage event."""

    code: str
    message: str = ""
    http_status: int | None = None
    retry_after: float | None = None
    latency_ms: int = 0
    # Set when the provider reported usage even though the call failed (it may still bill us).
    input_tokens: int = 0
    output_tokens: int = 0
    # True when the counts above were not reported by the provider but counted with tiktoken.
    tokens_estimated: bool = False
    generation_id: str = ""
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class LlmGateway(Protocol):
    def complete(self, request: LlmRequest) -> LlmResponse: ...
