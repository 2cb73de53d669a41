"""How a turn reports a refusal or a turn whose every call failed (shared by prepare and run)."""

import time

from orchestration.errors import LlmUnavailable
from orchestration.turns.request import TurnRequest
from pantheon.errors import ApplicationError
from pantheon.observability import TurnObserved, observe
from sessions_app.models import Turn


def refusal_observe(*, request: TurnRequest, exc: ApplicationError, started: float) -> None:
    observe(
        TurnObserved(
            status=Turn.Status.FAILED if isinstance(exc, LlmUnavailable) else "refused",
            mode=request.mode,
            session_id=str(request.session_id),
            user_id=request.user.pk,
            code=exc.code,
            total_seconds=time.perf_counter() - started,
        )
    )


def llm_unavailable(turn: Turn) -> LlmUnavailable:
    return LlmUnavailable(
        extra={"turn_id": str(turn.pk), "turn_index": turn.turn_index, "errors": turn.agent_errors}
    )
