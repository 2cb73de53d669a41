"""The one interface every LLM call goes through.

A provider takes an ``LlmRequest`` and returns an ``LlmResponse`` or raises ``LlmCallError``, in one
piece (``complete``) or streamed (``stream``: the reply's pieces go to ``on_delta`` as they arrive).
It never touches the database: metering happens in the caller, with the figures returned here.
"""

from collections.abc import Callable
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
    # The messages' tokens as counted here (tiktoken) when the caller counted them already (the
    # context plan's count); kept on the usage event for the token calibration. None: counted at the call.
    local_input_tokens: int | None = None


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
    # Parts of the counts above the provider reported (OpenRouter's ``prompt_tokens_details`` and
    # ``completion_tokens_details``): input read from and written to its prompt cache, reasoning.
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class LlmCallError(Exception):
    """A call that produced no usable reply. ``code`` is stable and stored on the usage event."""

    code: str
    message: str = ""
    http_status: int | None = None
    retry_after: float | None = None
    latency_ms: int = 0
    # Set when the provider reported usage even though the call failed (it may still bill us) and,
    # for a stream that failed after some of the reply arrived, counted with tiktoken when the
    # provider did not report them (``tokens_estimated``): those tokens were generated, so paid for.
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_estimated: bool = False
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    # The reply as far as it streamed before the failure, raw (empty for ``complete``).
    partial_content: str = ""
    generation_id: str = ""
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class LlmGateway(Protocol):
    def complete(self, request: LlmRequest) -> LlmResponse: ...

    def stream(self, request: LlmRequest, *, on_delta: Callable[[str], None]) -> LlmResponse:
        """Calls ``on_delta`` with each piece of the reply as it arrives (raw, in order, never empty)
        and returns the response, whose ``content`` is exactly the pieces joined. Raises
        ``LlmCallError`` like ``complete``, and also ``provider_stream_cut`` (the stream ended before
        the reply did) and ``provider_timeout`` for a late first chunk or a silence between chunks.
        An exception raised by ``on_delta`` ends the stream and propagates as is."""
        ...
