"""The embedded default provider: deterministic replies, no network, no key.

Each agent answers in its own voice; routing, summary and extraction requests get valid JSON, so
every mode and the summary pipeline work on a laptop. Same request → same reply: every choice is
taken from a hash of the request, never from a random source or the clock. Streamed, the reply
comes word by word.
"""

import hashlib
import json
import re
import time
from collections.abc import Callable

from orchestration.llm.gateway import LlmRequest, LlmResponse
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens

TAKES = (
    "the heart of it is {focus}; I would start there and build outward.",
    "my first move would be to pin down {focus} before anything else.",
    "I see {focus} as the part that matters most, and the rest follows from it.",
    "the useful question is what {focus} changes for us, so that is my angle.",
    "let me take {focus} apart piece by piece and keep only what holds up.",
)
CLOSINGS = (
    "That is where I would start.",
    "Happy to go deeper if useful.",
    "Tell me which part to expand.",
    "That should move us forward.",
)
AGENT_KEYS_LINE = re.compile(r"^AGENT_KEYS:[ \t]*(.*)$", re.MULTILINE)
MENTION = re.compile(r"@([a-z][a-z0-9_-]{0,31})", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A word with the whitespace before it, or the whitespace that ends a text.
WORD_PIECE = re.compile(r"\s*\S+|\s+$")
# Headings of the summary prompt (orchestration.prompts.summary_prompt_build).
PREVIOUS_SUMMARY = "Previous summary:"
NEW_TURNS = "New turns:"
DECISION = re.compile(r"\b(decided|decide|agreed|agree|will use|chose|settled on)\b", re.IGNORECASE)
ACTION = re.compile(r"\b(todo|to-do|need to|needs to|should|must|next step|let's)\b", re.IGNORECASE)
SUMMARY_MAX_CHARS = 1500
ITEM_MAX_CHARS = 200
ITEMS_MAX = 5


class OfflineGateway:
    """Deterministic stand-in for a real provider (``LLM_PROVIDER=offline``)."""

    def complete(self, request: LlmRequest) -> LlmResponse:
        started = time.perf_counter()
        content = _answer(request)
        input_tokens = count_messages_tokens(m.content for m in request.messages)
        output_tokens = count_text_tokens(content)
        return LlmResponse(
            content=content,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            # Exact for this provider: it is billed on the very counts it reports.
            tokens_estimated=False,
            latency_ms=int((time.perf_counter() - started) * 1000),
            generation_id=f"offline-{_digest(request.provider_model, *_texts(request), content):012x}",
            provider_model=request.provider_model,
            provider_input_tokens=input_tokens,
            provider_output_tokens=output_tokens,
        )

    def stream(self, request: LlmRequest, *, on_delta: Callable[[str], None]) -> LlmResponse:
        """The reply of ``complete``, handed to ``on_delta`` word by word first."""
        response = self.complete(request)
        for piece in word_pieces(response.content):
            on_delta(piece)
        return response


def word_pieces(text: str) -> list[str]:
    """``text`` cut before each word (a word keeps the whitespace before it): joined, they give
    ``text`` back exactly."""
    return WORD_PIECE.findall(text)


def _answer(request: LlmRequest) -> str:
    if request.purpose == "routing":
        return json.dumps({"selected_agent_keys": _route(request)})
    if request.purpose == "summary":
        return json.dumps({"summary_text": _summarize(_conversation(request))})
    if request.purpose == "extraction":
        return json.dumps(_extract(_conversation(request)))
    reply = _reply(request)
    return json.dumps({"reply": reply}) if request.json_mode else reply


def _reply(request: LlmRequest) -> str:
    messages = request.messages
    last_user_at = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    last_user = messages[last_user_at].content if last_user_at >= 0 else ""
    seed = _digest(request.agent_key, request.model_alias, *_texts(request))
    speaker = request.agent_name or request.agent_key.title() or "Assistant"
    topic = _snippet(MENTION.sub("", last_user).strip() or last_user, 80)
    take = TAKES[seed % len(TAKES)].format(focus=_focus(last_user))
    closing = CLOSINGS[(seed // len(TAKES)) % len(CLOSINGS)]
    # Replies of agents who spoke before in this turn come after the user's message ("Name: reply").
    before = [m.content.split(":", 1)[0] for m in messages[last_user_at + 1 :] if m.role == "assistant"]
    after = f" Building on what {' and '.join(dict.fromkeys(before))} said," if before else ""
    return f'{speaker} here — on "{topic}":{after} {take} {closing}'


def _route(request: LlmRequest) -> list[str]:
    """Agents @-mentioned or named in the user's message, in the order they appear; else the first."""
    system = "\n".join(m.content for m in request.messages if m.role == "system")
    line = AGENT_KEYS_LINE.search(system)
    keys = [k.strip().lower() for k in line.group(1).split(",") if k.strip()] if line else []
    message = next((m.content for m in reversed(request.messages) if m.role == "user"), "").lower()
    found: dict[str, int] = {}
    for mention in MENTION.finditer(message):
        if mention.group(1) in keys or not keys:
            found.setdefault(mention.group(1), mention.start())
    for key in keys:
        named = re.search(rf"(?<![\w@-]){re.escape(key)}(?![\w-])", message)
        if named and key not in found:
            found[key] = named.start()
    chosen = sorted(found, key=found.__getitem__)
    return chosen or keys[:1]


def _summarize(text: str) -> str:
    """The previous summary, then the notable sentences of every utterance since ("Name: …" lines of
    the transcript), kept within ``SUMMARY_MAX_CHARS`` by dropping the oldest sentences first."""
    previous, turns = "", text
    if NEW_TURNS in text:
        previous, turns = text.split(NEW_TURNS, 1)
        previous = previous.replace(PREVIOUS_SUMMARY, "").strip()
    sentences = _sentences(previous) if previous != "(none)" else []
    utterances = [
        (speaker, said)
        for speaker, colon, said in (line.strip().partition(": ") for line in turns.splitlines())
        if colon and 0 < len(speaker) <= 40 and said.strip()
    ]
    if utterances:
        sentences += [f"{speaker}: {kept}" for speaker, said in utterances for kept in _notable(said)]
    else:
        sentences += _sentences(turns)
    sentences = [_snippet(s, ITEM_MAX_CHARS) for s in sentences]
    while len(sentences) > 1 and sum(len(s) + 1 for s in sentences) > SUMMARY_MAX_CHARS:
        sentences.pop(0)
    return " ".join(sentences) or "Nothing has been discussed yet."


def _extract(text: str) -> dict[str, list[str]]:
    """Questions are open questions; sentences that decide or commit are decisions and action items;
    the rest are key facts."""
    sentences = _sentences(text)
    questions = [s for s in sentences if s.endswith("?")]
    decisions = [s for s in sentences if s not in questions and DECISION.search(s)]
    actions = [s for s in sentences if s not in questions + decisions and ACTION.search(s)]
    facts = [s for s in sentences if s not in questions + decisions + actions]
    return {
        name: [_snippet(s, ITEM_MAX_CHARS) for s in items[:ITEMS_MAX]]
        for name, items in (
            ("key_facts", facts),
            ("decisions", decisions),
            ("open_questions", questions),
            ("action_items", actions),
        )
    }


def _notable(said: str) -> list[str]:
    """An utterance's opening sentence, and any later one that asks, decides or commits (so the
    extraction stage still finds it), each ending in punctuation."""
    sentences = _sentences(said)
    kept = sentences[:1] + [
        s for s in sentences[1:] if s.endswith("?") or DECISION.search(s) or ACTION.search(s)
    ]
    return [s if s[-1] in ".!?…" else s + "." for s in kept[:3]]


def _conversation(request: LlmRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role != "system")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _focus(text: str) -> str:
    """The longest word of the message (the first of equals): what a reply can be "about"."""
    words = [w.strip(".,;:!?\"'()") for w in MENTION.sub("", text).split()]
    longest = max((w for w in words if len(w) >= 4), key=len, default="")
    return f'"{longest.lower()}"' if longest else "the question"


def _texts(request: LlmRequest) -> list[str]:
    return [f"{m.role}\x1e{m.content}" for m in request.messages]


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


def _snippet(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
