"""The cost preview of a turn (docs/budgets.md, "Cost preview"): what ``turn_prepare`` would decide,
with its own code, and nothing of what it takes — no claim, no slot, no hold, no model call, no write.

The agents that would answer (orchestrator: decided by the manager among the candidates), each
one's context on the bare input, the summary the turn would trigger, its worst case, and what would
refuse it: a context budget, a budget, or the balance.
"""

from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.conf import settings

from orchestration.errors import ContextBudgetExceeded
from orchestration.turns import store
from orchestration.turns.prepare import (
    agent_budgets,
    budget_fit,
    candidates_select,
    hold_plan,
    turn_scope_load,
)
from orchestration.turns.request import TurnRequest
from orchestration.turns.state import TurnPlan, TurnProgress
from pantheon.errors import NotFound
from sessions_app.models import Turn
from usage.selectors import credit_account_figures
from usage.services.budgets import budget_statuses, budgets_applicable


@dataclass(frozen=True)
class TurnPreview:
    mode: str
    answered_by: str  # "in order" (manual, roundtable) or "decided by the manager" (orchestrator)
    agents: list[dict]
    summary: dict
    worst_case_credits: Decimal
    parts: list[dict]
    credits_available: Decimal
    budgets: list[dict] = field(default_factory=list)
    refusal: dict | None = None

    def as_dict(self) -> dict:
        """The preview as JSON-ready data (amounts as exact strings)."""
        data = asdict(self)
        data["worst_case_credits"] = str(self.worst_case_credits)
        data["credits_available"] = str(self.credits_available)
        return data


def turn_preview(request: TurnRequest) -> TurnPreview:
    """Preview ``request``. Raises what the turn raises before reading the session's past (404, 422
    no_agent_selected); every later refusal is reported in ``refusal`` instead."""
    scope = turn_scope_load(request)
    progress = TurnProgress(
        request=request,
        scope=scope,
        plan=TurnPlan(candidates=candidates_select(request=request, agents=scope.agents)),
    )
    plan = progress.plan
    plan.budgets = agent_budgets(plan.candidates, scope.priced)
    peeked = store.context_peek(
        session_id=scope.session.pk,
        max_history_tokens=max((b.tokens for b in plan.budgets.values()), default=0),
    )
    if peeked is None:
        raise NotFound()
    plan.context = peeked.context
    offered = list(plan.candidates)
    refusal = None
    try:
        budget_fit(progress, record=False)
    except ContextBudgetExceeded as exc:
        refusal = {"code": exc.code, "message": exc.message, **exc.extra}
        plan.candidates = [a for a in plan.candidates if a.agent_key in plan.bare_plans]
    worst = hold_plan(progress)
    amount = worst.hold.amount
    available = credit_account_figures(user_id=request.user.pk)["credits_available"]
    statuses = []
    for status in budget_statuses(
        budgets_applicable(
            user_id=request.user.pk, room_id=scope.session.room_id, api_key_id=request.api_key_id
        )
    ):
        share = worst.budgets.share(status.budget, amount)
        refuses = share > 0 and status.spent + status.held + share > status.budget.limit_credits
        statuses.append({**status.as_dict(), "share_credits": str(share), "would_refuse": refuses})
        if refuses and refusal is None:
            refusal = {"code": "budget_exceeded", "budget": status.as_dict(), "required_credits": str(share)}
    if refusal is None and available < amount:
        refusal = {
            "code": "insufficient_credits",
            "available": str(max(available, 0)),
            "required_credits": str(amount),
        }
    orchestrated = request.mode == Turn.Mode.ORCHESTRATOR
    fitting = {a.agent_key for a in plan.candidates}
    return TurnPreview(
        mode=request.mode,
        answered_by="decided by the manager" if orchestrated else "in order",
        agents=[
            {
                "agent_key": a.agent_key,
                "name": a.name,
                "model_alias": a.model_alias,
                "context_tokens": plan.bare_plans[a.agent_key].tokens_after
                if a.agent_key in plan.bare_plans
                else None,
                "budget_tokens": plan.budgets[a.agent_key].tokens if a.agent_key in plan.budgets else None,
                "fits": a.agent_key in fitting,
            }
            for a in offered
        ],
        summary={
            "may_trigger": worst.summary_share is not None,
            "model_alias": settings.SUMMARY_MODEL_ALIAS if worst.summary_share else None,
            "worst_case_credits": str(worst.summary_share.amount) if worst.summary_share else "0",
        },
        worst_case_credits=amount,
        parts=[{**p, "credits": str(p["credits"])} for p in worst.parts],
        credits_available=available,
        budgets=statuses,
        refusal=refusal,
    )
