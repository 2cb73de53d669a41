"""The turn engine's application errors (rendered by pantheon.api.exceptions)."""

from rest_framework import status

from pantheon.api.exceptions import ApplicationError, Conflict, Unprocessable


class TurnConflict(Conflict):
    code = "turn_conflict"
    default_detail = "Turn creation conflicted with concurrent writes. Please retry."


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used on this session with a different request."


class ContextBudgetExceeded(Unprocessable):
    code = "context_budget_exceeded"
    default_detail = "The input does not fit the model's context budget, even after summary and pruning."


class NoAgentSelected(Unprocessable):
    code = "no_agent_selected"
    default_detail = "No agent was selected for this turn."


class InsufficientCredits(ApplicationError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    code = "insufficient_credits"
    default_detail = "Your credit balance cannot cover this turn."


class LlmUnavailable(ApplicationError):
    status_code = status.HTTP_502_BAD_GATEWAY
    code = "llm_unavailable"
    default_detail = "Every agent call of this turn failed. The failed turn was recorded."


class TurnWriteFailed(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "turn_write_failed"
    default_detail = "The turn could not be saved. Nothing was billed; please retry."
