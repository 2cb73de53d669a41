"""One user turn, from input to a committed, metered result (docs/architecture.md, "The path of a
turn"; docs/transactions.md).

- ``request``: ``turn_request_build`` validates the input once, whoever asks, into a ``TurnRequest``;
- ``prepare``: ``turn_prepare`` makes every refusal before any LLM call and reserves what the turn
  needs (in-flight slot, session claim with its history, credit hold);
- ``run``: ``turn_run``, the paid part: routing, each agent's call, one commit;
- ``store``: the database steps, each one PostgreSQL statement (scope, claim with history, commit);
- ``rows``: the rows a turn writes, built without the database;
- ``state``: what a turn knows as it goes, in parts.

``turn_execute`` runs both for a plain request/response turn.
"""

from orchestration.llm.gateway import LlmGateway
from orchestration.turns.prepare import turn_prepare
from orchestration.turns.request import TurnEventSink, TurnRequest, turn_request_build
from orchestration.turns.run import turn_run
from orchestration.turns.state import TurnOutcome, TurnProgress, TurnUsage

__all__ = [
    "TurnEventSink",
    "TurnOutcome",
    "TurnProgress",
    "TurnRequest",
    "TurnUsage",
    "turn_execute",
    "turn_prepare",
    "turn_request_build",
    "turn_run",
]


def turn_execute(
    *, request: TurnRequest, gateway: LlmGateway | None = None, on_event: TurnEventSink | None = None
) -> TurnOutcome:
    """Run one turn for the session's owner. Raises an ``ApplicationError`` for every refusal."""
    prepared = turn_prepare(request)
    if isinstance(prepared, TurnOutcome):
        return prepared
    return turn_run(prepared, gateway=gateway, on_event=on_event)
