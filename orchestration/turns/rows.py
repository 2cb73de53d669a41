"""The rows a turn writes, built in memory without touching the database: the store writes them."""

from orchestration.context import ContextPlan, turn_context_tokens
from orchestration.turns.request import TurnRequest
from orchestration.turns.state import TurnWork
from rooms.models import Agent
from sessions_app.models import ChatSession, Message, Turn, TurnContextAudit


def turn_status(work: TurnWork) -> str:
    """Failed when no agent answered, partial when some did not, completed otherwise."""
    if not work.replies:
        return Turn.Status.FAILED
    return Turn.Status.PARTIAL if work.errors else Turn.Status.COMPLETED


def turn_rows_build(
    *, request: TurnRequest, session: ChatSession, turn_id, work: TurnWork
) -> tuple[Turn, list[Message]]:
    """The turn (its index is the store's to set) and its messages: the user's, then each reply."""
    status = turn_status(work)
    output = "\n\n".join(f"{r.agent.name}: {r.content}" for r in work.replies)
    turn = Turn(
        id=turn_id,
        session=session,
        mode=request.mode,
        user_input=request.user_input,
        assistant_output=output,
        status=status,
        responding_agent_keys=[r.agent.agent_key for r in work.replies],
        agent_errors=work.errors,
        routing_used_fallback=work.routing_used_fallback,
        stop_reason=work.stop_reason,
        discussion=work.discussion,
        summary_triggered=work.summary_triggered and status != Turn.Status.FAILED,
        context_tokens=turn_context_tokens(user_input=request.user_input, assistant_output=output),
        idempotency_key=request.idempotency_key,
        request_fingerprint=request.fingerprint,
    )
    messages = [
        Message(
            session=session, turn=turn, role=Message.Role.USER, mode=request.mode, content=request.user_input
        ),
        *(
            Message(
                session=session,
                turn=turn,
                role=Message.Role.ASSISTANT,
                agent_key=r.agent.agent_key,
                agent_name=r.agent.name,
                model_alias=r.model_alias,
                mode=request.mode,
                content=r.content,
                order=position,
            )
            for position, r in enumerate(work.replies, start=1)
        ),
    ]
    for audit in work.audits:
        audit.turn_id = turn.pk
    return turn, messages


def audit_build(*, session: ChatSession, agent: Agent, plan: ContextPlan) -> TurnContextAudit:
    """The audit of one agent call; its turn is set when the turn is written (never, if rejected)."""
    return TurnContextAudit(
        session_id=session.pk,
        agent_key=agent.agent_key,
        model_alias=agent.model_alias,
        context_window=plan.budget.context_window,
        max_output_tokens=plan.budget.max_output_tokens,
        budget_tokens=plan.budget.tokens,
        tokens_before=plan.tokens_before,
        tokens_after=plan.tokens_after,
        summary_used=plan.summary_used,
        pruned_turn_count=plan.pruned_turn_count,
        pruned_through_turn_index=plan.pruned_through_turn_index,
        rejected=plan.rejected,
        summary_triggered=plan.summary_triggered,
    )
