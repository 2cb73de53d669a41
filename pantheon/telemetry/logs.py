"""One log line per turn (committed or refused), for whoever reads the logs rather than metrics:
what was asked (mode, agents), how it ended, where the time went (the LLM's vs Pantheon's own),
tokens and cost. In JSON each figure is a field of its own; in text they are ``key=value``."""

import logging

from pantheon.observability import TurnObserved

logger = logging.getLogger("pantheon.turns")


def turn_log_write(event: TurnObserved) -> None:
    llm_ms = round(event.llm_seconds * 1000, 1)
    own_ms = round(max(event.total_seconds - event.llm_seconds, 0.0) * 1000, 1)
    fields = {
        "event": "turn",
        "status": event.status,
        "code": event.code,
        "mode": event.mode,
        "agents": list(event.agent_keys),
        "llm_ms": llm_ms,
        "pantheon_ms": own_ms,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cost_usd": _plain(event.cost_usd),
        "credits": _plain(event.credits_burned),
        "streamed": event.streamed,
    }
    ids = {"turn_id": event.turn_id or "-", "session_id": event.session_id or "-"}
    if event.user_id is not None:
        ids["user_id"] = str(event.user_id)
    level = logging.WARNING if event.status == "failed" else logging.INFO
    logger.log(
        level,
        "turn %s mode=%s agents=%s code=%s llm_ms=%s pantheon_ms=%s tokens=%s/%s cost_usd=%s credits=%s",
        event.status,
        event.mode,
        ",".join(event.agent_keys) or "-",
        event.code or "-",
        llm_ms,
        own_ms,
        event.input_tokens,
        event.output_tokens,
        fields["cost_usd"],
        fields["credits"],
        extra={**fields, **ids},
    )


def _plain(amount) -> str:
    """A Decimal as people write it: 0 (not 0E-12), 0.0002336, 12.5."""
    return "0" if amount == 0 else format(amount.normalize(), "f")
