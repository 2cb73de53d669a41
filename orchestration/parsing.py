"""Strict parsing of what helper calls answer (summary and extraction), with deterministic
fallbacks. Routing's answer is parsed in ``orchestration.modes`` (it decides who speaks)."""

import logging
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

logger = logging.getLogger(__name__)


def validation_brief(exc: ValidationError) -> str:
    """One short line about a validation failure: never a multi-kilobyte dump in the logs."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "root"
    return f"{exc.error_count()} errors, first {first.get('type')} at {where}"


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
