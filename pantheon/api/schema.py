"""OpenAPI pieces shared by every view: the one error shape and the error responses."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A human-readable explanation.")
    code = serializers.CharField(
        help_text="A stable machine code, e.g. `invalid`, `not_found`, `turn_conflict`."
    )
    fields = serializers.DictField(
        required=False, help_text="On validation errors: the failing fields and their messages."
    )


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


# One-entry maps to compose the responses an operation really has: {200: X, **UNAUTHENTICATED, ...}.
INVALID = {400: error("Invalid request (`invalid`); on validation errors `fields` says which.")}
UNAUTHENTICATED = {401: error("Missing or bad credentials (`not_authenticated`).")}
NOT_FOUND = {404: error("Missing, deleted or not yours (`not_found`).")}
THROTTLED = {429: error("Rate limited (`throttled`); see Retry-After.")}

ERROR_RESPONSES = {**INVALID, **UNAUTHENTICATED, **NOT_FOUND}  # a read with filters: 400 on a bad value

TURN_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    402: error("The credit balance cannot cover the turn (`insufficient_credits`)."),
    409: error("The turn could not be sequenced in time (`turn_conflict`); see Retry-After."),
    422: error("`no_agent_selected`, `context_budget_exceeded` or `idempotency_key_reused`."),
    **THROTTLED,
    502: error("Every agent call failed (`llm_unavailable`); the failed turn is recorded."),
    503: error("The turn could not be saved (`turn_write_failed`); nothing was billed."),
}


# Examples for Decimal strings, by decimal places: without them Swagger UI makes up values from the
# pattern (negative, twelve-digit) that no response ever holds.
DECIMAL_EXAMPLES = {4: "12.5000", 12: "0.004200000000"}


def decimal_examples(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: a plausible ``example`` on every decimal string."""

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("format") == "decimal" and "example" not in node:
                places = int(node.get("pattern", "{0,2}").rsplit("{0,", 1)[-1].split("}")[0])
                node["example"] = DECIMAL_EXAMPLES.get(places, "1." + "5".ljust(places, "0"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result.get("components", {}))
    return result
