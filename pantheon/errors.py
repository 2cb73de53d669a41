"""Domain errors: a stable ``code``, a human ``message`` and extra data — and nothing of HTTP.

Services, selectors, tasks and commands raise these; only the API layer
(``pantheon.api.exceptions``) turns each kind into a status code and a response body. A task or a
command catches them like any other exception.
"""

from typing import Any


class ApplicationError(Exception):
    """A business rule refused the request: the caller's input or the state it asks about.

    ``extra`` is merged into the API's error body; ``retry_after_seconds`` says when trying again
    may succeed (the API sends it as ``Retry-After``).
    """

    code: str = "invalid"
    default_message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.extra = extra or {}
        self.retry_after_seconds = retry_after_seconds
        super().__init__(self.message)


class InvalidInput(ApplicationError):
    """Malformed or out-of-range input (``extra["fields"]`` names the failing fields)."""

    @classmethod
    def for_field(cls, field: str, message: str) -> "InvalidInput":
        return cls(f"{field}: {message}", extra={"fields": {field: [message]}})


class NotFound(ApplicationError):
    """Missing, deleted or not the caller's: the three look the same."""

    code = "not_found"
    default_message = "Not found."


class Forbidden(ApplicationError):
    code = "permission_denied"
    default_message = "You may not do this."


class Conflict(ApplicationError):
    """The request collides with the current state (a taken key, a busy session)."""

    code = "conflict"


class RuleViolation(ApplicationError):
    """Well-formed input that a rule of the product refuses (no agent selected, over budget …)."""

    code = "unprocessable"


class PaymentRequired(ApplicationError):
    """The user's credits cannot cover what was asked."""

    code = "payment_required"


class TooManyRequests(ApplicationError):
    code = "throttled"
    default_message = "Too many requests."


class UpstreamUnavailable(ApplicationError):
    """Every call to the LLM provider failed."""

    code = "upstream_unavailable"


class ServiceUnavailable(ApplicationError):
    """Pantheon itself could not complete the request (e.g. a write failed); retrying may work."""

    code = "unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database did not answer (down, unreachable, or no connection free in time)."""

    code = "database_unavailable"
    default_message = "The database is not answering; nothing was done. Retry shortly."
