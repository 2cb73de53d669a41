"""Helpers for strict parsing of LLM helper output."""

from pydantic import ValidationError


def validation_brief(exc: ValidationError) -> str:
    """One short line about a validation failure: never a multi-kilobyte dump in the logs."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "root"
    return f"{exc.error_count()} errors, first {first.get('type')} at {where}"
