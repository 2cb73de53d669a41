"""A turn as an OpenAI ``chat.completion``, whole or as ``chat.completion.chunk`` Server-Sent Events.

The assistant's content is the turn's reply exactly as stored (``Name: reply`` paragraphs). A stream
sends the same text as it is written: each agent's part starts with its name (once its first words
arrive, so an agent that fails before saying anything leaves no trace), the parts are separated by a
blank line, and each reply is trimmed as it is stored — whitespace at either end is held back, NUL
characters dropped — so a finished stream adds up to the stored reply.
"""

import json
import time
from typing import Any

from openai_compat.api.errors import openai_application_error_body
from openai_compat.api.serializers import PantheonTurnSerializer
from openai_compat.services import ChatTurn, chat_turn_record
from orchestration.turns import TurnOutcome
from pantheon.errors import ApplicationError

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"  # an SSE comment: clients skip it, proxies see traffic


def completion_id(turn_id) -> str:
    return f"chatcmpl-{turn_id.hex}"


def usage_data(outcome: TurnOutcome) -> dict[str, int]:
    usage = outcome.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def pantheon_data(chat: ChatTurn, outcome: TurnOutcome) -> dict[str, Any]:
    turn, usage = outcome.turn, outcome.usage
    return PantheonTurnSerializer(
        {
            "session_id": turn.session_id,
            "forked_from_session_id": chat.forked_from.pk if chat.forked_from else None,
            "turn_id": turn.pk,
            "turn_index": turn.turn_index,
            "mode": turn.mode,
            "status": turn.status,
            "responding_agent_keys": turn.responding_agent_keys,
            "agent_errors": turn.agent_errors,
            "replayed": outcome.replayed,
            "llm_calls": usage.llm_calls,
            "cost_usd": usage.cost_usd,
            "billed_cost_usd": usage.billed_cost_usd,
            "credits_burned": usage.credits_burned,
            "credits_unbilled": usage.credits_unbilled,
        }
    ).data


def completion_data(chat: ChatTurn, outcome: TurnOutcome) -> dict[str, Any]:
    turn = outcome.turn
    return {
        "id": completion_id(turn.pk),
        "object": "chat.completion",
        "created": int(turn.created_at.timestamp()),
        "model": chat.model.id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": turn.assistant_output},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_data(outcome),
        "pantheon": pantheon_data(chat, outcome),
    }


def sse_data(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class CompletionChunks:
    """Encodes a streamed turn's events (``pantheon.api.streaming.TurnStream``) as chunks."""

    def __init__(self, chat: ChatTurn, *, turn_id, include_usage: bool) -> None:
        self.chat, self.include_usage = chat, include_usage
        self.id, self.created = completion_id(turn_id), int(time.time())
        self.sent: list[str] = []  # the content as the client received it
        self._name = ""  # the agent whose reply is arriving
        self._started = False  # its name has been sent
        self._held = ""  # whitespace held back: sent only if more words follow

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope(choices=[choice], **extra)

    def _envelope(self, **fields: Any) -> bytes:
        return sse_data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.chat.model.id,
                **fields,
            }
        )

    def head(self) -> bytes:
        return self.chunk({"role": "assistant", "content": ""})

    def content(self, text: str) -> bytes:
        self.sent.append(text)
        return self.chunk({"content": text})

    def encode(self, name: str, data: Any) -> bytes | None:
        if name == "agent.started":
            self._name, self._started, self._held = data["agent_name"], False, ""
        elif name == "agent.delta":
            return self._delta(data["text"])
        elif name in ("agent.completed", "agent.failed"):
            self._started, self._held = False, ""
        elif name == "turn.completed":
            chat_turn_record(chat=self.chat, outcome=data, sent_reply="".join(self.sent))
            return self.ending(data)
        elif name == "error":
            return self.error(data)
        return None

    def _delta(self, text: str) -> bytes | None:
        text = text.replace("\x00", "")
        prefix = ""
        if not self._started:
            text = text.lstrip()
            if not text:
                return None
            prefix = ("\n\n" if self.sent else "") + f"{self._name}: "
            self._started = True
        words = text.rstrip()
        if not words:
            self._held += text
            return None
        piece = prefix + self._held + words
        self._held = text[len(words) :]
        return self.content(piece)

    def ending(self, outcome: TurnOutcome) -> bytes:
        body = self.chunk({}, finish_reason="stop", pantheon=pantheon_data(self.chat, outcome))
        if self.include_usage:
            body += self._envelope(choices=[], usage=usage_data(outcome))
        return body + DONE

    def error(self, exc: ApplicationError) -> bytes:
        return sse_data(openai_application_error_body(exc)) + DONE

    def replay(self, outcome: TurnOutcome) -> bytes:
        """A replayed ``Idempotency-Key`` as a stream: the stored reply in one piece."""
        return self.head() + self.content(outcome.turn.assistant_output) + self.ending(outcome)
