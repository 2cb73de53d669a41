"""The OpenAI-compatible endpoint's domain errors (the API layer gives each its status and shape)."""

from pantheon.errors import InvalidInput, NotFound


class ModelNotFound(NotFound):
    """Not one of the user's rooms served as a model: missing, deleted, another user's, or an id
    that names no room."""

    code = "model_not_found"

    def __init__(self, model_id: str) -> None:
        super().__init__(f"The model {model_id!r} does not exist: list yours at /api/openai/v1/models.")


class ConversationInvalid(InvalidInput):
    """The messages cannot make a turn (no user message last, nothing to say …)."""

    @classmethod
    def messages(cls, message: str) -> "ConversationInvalid":
        return cls(f"messages: {message}", extra={"fields": {"messages": [message]}})
