"""The two summary stages: prompts, strict parsing (pydantic) and deterministic fallbacks."""

import logging
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from orchestration.llm.gateway import ChatMessage
from orchestration.parsing import validation_brief

logger = logging.getLogger(__name__)

Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
MAX_ITEMS = 20
FALLBACK_CHARS = 4000


class SummaryDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary_text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]


class SummaryExtraction(BaseModel):
    """Missing keys default to empty lists."""

    model_config = ConfigDict(extra="ignore")

    key_facts: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    decisions: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    open_questions: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    action_items: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)


def transcript_build(turns: list[tuple[int, str, str]]) -> str:
    """``(index, user_input, assistant_output)`` → a plain transcript."""
    blocks = []
    for index, user_input, output in turns:
        blocks.append(f"[Turn {index}]\nUser: {user_input}\n{output}".rstrip())
    return "\n\n".join(blocks)


def summary_prompt_build(*, previous: str | None, transcript: str) -> tuple[ChatMessage, ...]:
    system = (
        "You maintain the running summary of a multi-agent conversation. Merge the previous summary "
        "with the new turns into one concise, factual summary that keeps names, decisions, open "
        'questions and commitments. Answer with strict JSON only: {"summary_text": "..."}.'
    )
    user = f"Previous summary:\n{previous or '(none)'}\n\nNew turns:\n{transcript}"
    return (ChatMessage("system", system), ChatMessage("user", user))


def extraction_prompt_build(*, summary_text: str) -> tuple[ChatMessage, ...]:
    system = (
        "Extract structured notes from the summary. Answer with strict JSON only: "
        '{"key_facts": [], "decisions": [], "open_questions": [], "action_items": []} — '
        "each a list of short strings."
    )
    return (ChatMessage("system", system), ChatMessage("user", summary_text))


def summary_parse(raw: str | None, *, previous: str | None, transcript: str) -> tuple[str, bool]:
    """The summary text and whether the fallback was used."""
    if raw is not None:
        try:
            return SummaryDraft.model_validate_json(raw).summary_text, False
        except ValidationError as exc:
            logger.warning("summary answer invalid (%s); falling back", validation_brief(exc))
    else:
        logger.warning("summary call failed; falling back")
    return _summary_fallback(previous=previous, transcript=transcript), True


def extraction_parse(raw: str | None, *, summary_text: str) -> tuple[SummaryExtraction, bool]:
    if raw is not None:
        try:
            return SummaryExtraction.model_validate_json(raw), False
        except ValidationError as exc:
            logger.warning("extraction answer invalid (%s); falling back", validation_brief(exc))
    else:
        logger.warning("extraction call failed; falling back")
    return _extraction_fallback(summary_text), True


def _summary_fallback(*, previous: str | None, transcript: str) -> str:
    """Deterministic: the previous summary, then the newest part of the transcript that fits."""
    head = (previous.strip() + "\n\n") if previous else ""
    room = max(FALLBACK_CHARS - len(head), 500)
    tail = transcript[-room:]
    if len(transcript) > room:
        tail = "…" + tail[tail.find("\n") + 1 :] if "\n" in tail else "…" + tail
    return (head + tail).strip() or "(no content)"


def _extraction_fallback(summary_text: str) -> SummaryExtraction:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", summary_text) if s.strip()]
    questions = [s[:500] for s in sentences if s.endswith("?")][:MAX_ITEMS]
    return SummaryExtraction(open_questions=questions)
