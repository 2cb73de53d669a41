"""Domain errors of credits and price lists (the API layer and the admin give each its meaning)."""

from decimal import Decimal

from pantheon.errors import InvalidInput, RuleViolation
from usage.formatting import credits_display


class AdjustmentInvalid(InvalidInput):
    """An adjustment needs a non-zero amount (at most 4 decimal places) and a note."""


class AdjustmentExceedsAvailable(RuleViolation):
    """A negative adjustment may take what is available (balance − held), never more: the balance
    stays at or above zero and covers what work in flight has reserved."""

    code = "adjustment_exceeds_available"

    def __init__(self, *, available: Decimal, requested: Decimal) -> None:
        super().__init__(
            f"Cannot take {credits_display(requested)} credits: only {credits_display(available)} are "
            "available (balance − held).",
            extra={"available": str(available), "requested": str(requested)},
        )


class CreditAccountMissing(RuleViolation):
    code = "credit_account_missing"
    default_message = "The user has no credit account (run credit_accounts_open)."


class PriceListIncomplete(RuleViolation):
    """Activating a list without a price for an active catalog model would make that model free."""

    code = "price_list_incomplete"

    def __init__(self, *, aliases: list[str]) -> None:
        super().__init__(
            f"The price list has no price for {', '.join(aliases)}: add them before activating it.",
            extra={"unpriced_models": aliases},
        )
