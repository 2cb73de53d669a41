"""The embedded default provider: deterministic replies, no network, no key.

Each agent answers in its own voice; routing, summary and extraction requests get valid JSON, so
every mode and the summary pipeline work on a laptop. Same request → same reply.
"""

import hashlib
import json
import re
import time

from orchestration.llm.gateway import LlmRequest, LlmResponse
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens

OPENINGS = (
    "Here is how I see it",
    "Taking this up",
    "My angle on this",
    "Building on what we have",
    "A thought to add",
)
CLOSINGS = (
    "That is where I would start.",
    "Happy to go deeper if useful.",
    "Let me know which part to expand.",
    "That should move us forward.",
)
AGENT_KEYS_LINE = re.compile(r"^AGENT_KEYS:\s*(.*)$", re.MULTILINE)
MENTION = re.compile(r"@([a-z][a-z0-9_-]{0,31})", re.IGNORECASE)


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class OfflineGateway:
    """Deterministic stand-in for a real provider (``LLM_PROVIDER=offline``)."""

    def complete(self, request: LlmRequest) -> LlmResponse:
        started = time.perf_counter()
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        if request.purpose == "routing":
            content = self._route(request, last_user)
        elif request.purpose == "summary":
            content = self._summarize(request)
        elif request.purpose == "extraction":
            content = self._extract(request)
        else:
            content = self._reply(request, last_user)
        input_tokens = count_messages_tokens(m.content for m in request.messages)
        output_tokens = count_text_tokens(content)
        return LlmResponse(
            content=content,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tokens_estimated=False,
            latency_ms=int((time.perf_counter() - started) * 1000),
            generation_id=f"offline-{_digest(request.provider_model, content):x}",
            provider_model=request.provider_model,
            provider_input_tokens=input_tokens,
            provider_output_tokens=output_tokens,
        )

    def _reply(self, request: LlmRequest, last_user: str) -> str:
        seed = _digest(request.agent_key, request.model_alias, last_user, str(len(request.messages)))
        speaker = request.agent_name or request.agent_key or "Assistant"
        earlier = sum(1 for m in request.messages if m.role == "assistant")
        opening = OPENINGS[seed % len(OPENINGS)]
        closing = CLOSINGS[(seed // 7) % len(CLOSINGS)]
        context = f" (after {earlier} earlier {'reply' if earlier == 1 else 'replies'})" if earlier else ""
        topic = _snippet(last_user)
        return f'{opening}{context}: as {speaker} on {request.model_alias}, on "{topic}". {closing}'

    def _route(self, request: LlmRequest, last_user: str) -> str:
        system = "\n".join(m.content for m in request.messages if m.role == "system")
        line = AGENT_KEYS_LINE.search(system)
        keys = [k.strip() for k in line.group(1).split(",") if k.strip()] if line else []
        lowered = last_user.lower()
        mentioned = [k for k in dict.fromkeys(m.lower() for m in MENTION.findall(last_user)) if k in keys]
        named = [k for k in keys if k not in mentioned and re.search(rf"\b{re.escape(k)}\b", lowered)]
        chosen = mentioned + named or keys[:1]
        return json.dumps({"selected_agent_keys": chosen})

    def _summarize(self, request: LlmRequest) -> str:
        text = " ".join(m.content for m in request.messages if m.role != "system")
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
        summary = " ".join(_snippet(s, 160) for s in sentences[:6]) or "Nothing has been discussed yet."
        return json.dumps({"summary_text": summary})

    def _extract(self, request: LlmRequest) -> str:
        text = " ".join(m.content for m in request.messages if m.role != "system")
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
        questions = [s for s in sentences if s.endswith("?")]
        decisions = [s for s in sentences if re.search(r"\b(decided|agreed|will use|chose)\b", s, re.I)]
        actions = [s for s in sentences if re.search(r"\b(todo|need to|should|must|next step)\b", s, re.I)]
        facts = [s for s in sentences if s not in questions + decisions + actions][:5]
        return json.dumps(
            {
                "key_facts": [_snippet(s, 160) for s in facts],
                "decisions": [_snippet(s, 160) for s in decisions[:5]],
                "open_questions": [_snippet(s, 160) for s in questions[:5]],
                "action_items": [_snippet(s, 160) for s in actions[:5]],
            }
        )
