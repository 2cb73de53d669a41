"""The turn engine's domain errors (the API layer gives each its status)."""

from django.conf import settings

from pantheon.errors import (
    Conflict,
    InvalidInput,
    RuleViolation,
    ServiceUnavailable,
    TooManyRequests,
    UpstreamUnavailable,
)

__all__ = [
    "ContextBudgetExceeded",
    "DiscussionCapTooLow",
    "DiscussionTooLong",
    "IdempotencyKeyReused",
    "InvalidInput",
    "LlmUnavailable",
    "NoAgentSelected",
    "ServerBusy",
    "SummaryBusy",
    "TurnConflict",
    "TurnWriteFailed",
    "TurnsInFlight",
]


class TurnConflict(Conflict):
    code = "turn_conflict"
    default_message = "Turn creation conflicted with concurrent writes. Please retry."

    def __init__(self, message: str | None = None, **kwargs) -> None:
        kwargs.setdefault("retry_after_seconds", settings.TURN_CONFLICT_RETRY_AFTER_SECONDS)
        super().__init__(message, **kwargs)


class TurnsInFlight(TooManyRequests):
    """More of the user's turns running or waiting than ``TURNS_IN_FLIGHT_PER_USER``."""

    default_message = "Too many of your turns are running at once. Please retry when one has finished."


class IdempotencyKeyReused(RuleViolation):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used on this session with a different request."


class ContextBudgetExceeded(RuleViolation):
    code = "context_budget_exceeded"
    default_message = "The input does not fit the model's context budget, even after summary and pruning."


class DiscussionTooLong(RuleViolation):
    """A discussion whose worst case (its steps) passes what is allowed: without a credit cap,
    ``DISCUSSION_MAX_STEPS``."""

    code = "discussion_too_long"
    default_message = "This discussion may run more steps than allowed; give it a credit cap or fewer steps."


class DiscussionCapTooLow(RuleViolation):
    code = "discussion_cap_too_low"
    default_message = "The discussion's credit cap does not cover even its first step."


class NoAgentSelected(RuleViolation):
    code = "no_agent_selected"
    default_message = "No agent was selected for this turn."


class LlmUnavailable(UpstreamUnavailable):
    code = "llm_unavailable"
    default_message = "Every agent call of this turn failed. The failed turn was recorded."


class TurnWriteFailed(ServiceUnavailable):
    code = "turn_write_failed"
    default_message = "The turn could not be saved. Nothing was billed; please retry."


class ServerBusy(ServiceUnavailable):
    """This process already runs ``TURNS_IN_FLIGHT_PER_PROCESS`` turns: refused at once, nothing held."""

    code = "server_busy"
    default_message = "The server is running as many turns as it can. Please retry shortly."

    def __init__(self, message: str | None = None, **kwargs) -> None:
        kwargs.setdefault("retry_after_seconds", settings.SERVER_BUSY_RETRY_AFTER_SECONDS)
        super().__init__(message, **kwargs)


class SummaryBusy(Conflict):
    """Another summary of the session is being made (one at a time per session): try again later."""

    code = "summary_busy"
    default_message = "Another summary of this session is being made."

    def __init__(self, *, session_id: str) -> None:
        super().__init__(extra={"session_id": session_id}, retry_after_seconds=5)
