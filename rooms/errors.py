"""Domain errors of rooms and agents."""

from pantheon.errors import Conflict


class AgentKeyTaken(Conflict):
    code = "agent_key_taken"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"A live agent in this room already has the key '{key}'.",
            extra={"fields": {"agent_key": [f"'{key}' is taken in this room."]}},
        )
