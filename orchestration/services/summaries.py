"""Session summaries: two metered LLM stages, written once per (session, covered turn index).

``session_summary_generate`` is what the Celery task runs after a turn that marked a summary due;
the sweep (``orchestration.tasks.summaries_due_sweep``) makes the due ones that were never produced
(broker down, worker killed), found by ``orchestration.selectors.summaries_due``.
"""

import logging
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from orchestration.context import Budget
from orchestration.llm.gateway import LlmGateway, LlmRequest
from orchestration.llm.registry import gateway_get
from orchestration.llm.tokens import count_message_tokens
from orchestration.parsing import extraction_parse, summary_parse
from orchestration.prompts import extraction_prompt_build, summary_prompt_build, transcript_build
from orchestration.services.calls import CallLog, CallScope, llm_call_staged
from pantheon.celery import app as celery_app
from pantheon.logging import turn_log_context
from pantheon.observability import SummaryObserved, observe
from sessions_app.models import ChatSession, SessionSummary, Turn
from usage.metering import Charge, charge_compute
from usage.models import CreditHold, CreditLedgerEntry
from usage.selectors import PricedModel, priced_models_get
from usage.services.budgets import BudgetClaim, BudgetExceeded
from usage.services.events import usage_events_commit, usage_events_write_orphaned
from usage.services.holds import (
    HoldRequest,
    InsufficientCredits,
    credit_hold_place,
    credit_hold_release,
    summary_hold_expiry,
    summary_hold_find,
)

logger = logging.getLogger(__name__)

# The Celery task that runs ``session_summary_generate`` (orchestration/tasks.py), by name: the tasks
# module imports this one, so this one must not import it.
SUMMARY_TASK = "orchestration.tasks.session_summary_generate"
SUMMARY_MAX_OUTPUT_TOKENS = 1024
# The extraction prompt's own text around the summary it is given.
EXTRACTION_PROMPT_TOKENS = 200


def session_summary_generate(
    *, session_id: uuid.UUID | str, through_index: int, gateway: LlmGateway | None = None
) -> SessionSummary | None:
    """Summarize the session up to ``through_index``. Idempotent: an existing summary for that
    index (or a later one) is returned as it is and nothing is called or billed again."""
    session = ChatSession.objects.select_related("room").filter(pk=session_id).first()
    hold = summary_hold_find(session_id=session_id, through_index=through_index)
    if session is None:
        logger.warning("summary skipped: session %s no longer exists", session_id)
        if hold is not None:
            credit_hold_release(hold=hold)
        return None
    done = SessionSummary.objects.filter(
        session=session, covers_through_turn_index__gte=through_index
    ).first()
    if done is not None:
        if hold is not None:  # made already (a retried task, or a later summary covers it)
            credit_hold_release(hold=hold)
        observe(SummaryObserved(outcome="existing", session_id=str(session.pk), through_index=through_index))
        return done

    with turn_log_context(f"summary:{session.pk}:{through_index}"):
        previous = (
            SessionSummary.objects.filter(session=session, covers_through_turn_index__lt=through_index)
            .order_by("-covers_through_turn_index")
            .first()
        )
        alias = settings.SUMMARY_MODEL_ALIAS
        model = priced_models_get(aliases={alias}).get(alias)
        if hold is None and model is not None:
            hold = _summary_hold_place(session=session, through_index=through_index, model=model)
        budget = _summary_budget(model)
        transcript = _transcript_within(
            session=session,
            after=previous.covers_through_turn_index if previous else 0,
            through=through_index,
            tokens=budget.tokens - 400 - count_message_tokens(previous.summary_text if previous else ""),
        )
        log = CallLog()
        gateway = gateway or gateway_get()
        previous_text = previous.summary_text if previous else None

        raw_summary = raw_extraction = None
        if model is None:
            logger.error("summary model %r is not an active catalog model; using the fallbacks", alias)
        else:
            raw_summary = _call(
                gateway,
                model,
                log,
                session,
                "summary",
                summary_prompt_build(previous=previous_text, transcript=transcript),
            )
        summary_text, summary_fallback = summary_parse(
            raw_summary, previous=previous_text, transcript=transcript
        )
        if model is not None:
            raw_extraction = _call(
                gateway, model, log, session, "extraction", extraction_prompt_build(summary_text=summary_text)
            )
        extraction, extraction_fallback = extraction_parse(raw_extraction, summary_text=summary_text)

        try:
            with transaction.atomic():
                summary = SessionSummary.objects.create(
                    session=session,
                    covers_through_turn_index=through_index,
                    summary_text=summary_text,
                    key_facts=extraction.key_facts,
                    decisions=extraction.decisions,
                    open_questions=extraction.open_questions,
                    action_items=extraction.action_items,
                    summary_used_fallback=summary_fallback,
                    extraction_used_fallback=extraction_fallback,
                )
                usage_events_commit(
                    user_id=session.room.owner_id,
                    events=log.events,
                    hold=hold,
                    kind=CreditLedgerEntry.Kind.SUMMARY_DEBIT,
                )
        except IntegrityError:
            # A concurrent run wrote this summary first; ours is not kept, its calls were still made.
            usage_events_write_orphaned(events=log.events)
            observe(SummaryObserved("existing", str(session.pk), through_index))
            return SessionSummary.objects.get(session=session, covers_through_turn_index=through_index)
        except Exception:
            usage_events_write_orphaned(events=log.events)
            observe(
                SummaryObserved(outcome="failed", session_id=str(session.pk), through_index=through_index)
            )
            raise
        logger.info(
            "summary written through=%s fallbacks=%s/%s", through_index, summary_fallback, extraction_fallback
        )
        observe(SummaryObserved(outcome="made", session_id=str(session.pk), through_index=through_index))
        return summary


def _summary_hold_place(*, session: ChatSession, through_index: int, model: PricedModel) -> CreditHold | None:
    """A summary found without its hold (the turn could not keep a share, or the sweep freed it)
    reserves its own worst case before its first call. If the balance cannot cover it the summary is
    still made — the session's agents need it — and its cost stays unbilled: nothing is ever charged
    beyond a hold."""
    worst = summary_worst_case(priced={model.alias: model})
    try:
        return credit_hold_place(
            hold=HoldRequest(
                user_id=session.room.owner_id,
                kind=CreditHold.Kind.SUMMARY,
                amount=worst.credits,
                cost_usd=worst.cost_usd,
                model_alias=model.alias,
                room_id=session.room_id,
                session_id=session.pk,
                covers_through_turn_index=through_index,
                expires_at=summary_hold_expiry(),
            ),
            budgets=BudgetClaim(room_id=session.room_id, parts={model.alias: worst.credits}),
        )
    except (InsufficientCredits, BudgetExceeded) as exc:
        logger.warning("summary through %s made unbilled: %s", through_index, exc.code)
    except IntegrityError:  # a concurrent run of the same summary holds it
        logger.info("summary through %s: its hold is another run's", through_index)
    return None


def _summary_budget(model: PricedModel | None) -> Budget:
    return Budget.for_agent(
        context_window_tokens=None,
        model_context_window=model.context_window if model else settings.CONTEXT_WINDOW_TOKENS,
        model_max_output_tokens=SUMMARY_MAX_OUTPUT_TOKENS,
    )


def summary_worst_case(*, priced: dict[str, PricedModel]) -> Charge | None:
    """The most a summary (both stages) can cost at current prices: the summary call with its whole
    budget as input, the extraction with a full summary as input, each with its full output."""
    model = priced.get(settings.SUMMARY_MODEL_ALIAS)
    if model is None:
        return None
    budget = _summary_budget(model)
    stages = [
        (budget.tokens, SUMMARY_MAX_OUTPUT_TOKENS),
        (SUMMARY_MAX_OUTPUT_TOKENS + EXTRACTION_PROMPT_TOKENS, SUMMARY_MAX_OUTPUT_TOKENS),
    ]
    charges = [
        charge_compute(
            input_tokens=i, output_tokens=o, price=model.worst_price, credits_per_usd=settings.CREDITS_PER_USD
        )
        for i, o in stages
    ]
    return Charge(
        cost_usd=sum((c.cost_usd for c in charges), Decimal(0)),
        oe_tokens=sum(c.oe_tokens for c in charges),
        credits=sum((c.credits for c in charges), Decimal(0)),
    )


def _call(gateway, model, log: CallLog, session: ChatSession, purpose: str, messages) -> str | None:
    request = LlmRequest(
        model_alias=model.alias,
        provider_model=model.provider_model,
        messages=messages,
        max_output_tokens=SUMMARY_MAX_OUTPUT_TOKENS,
        purpose=purpose,
        json_mode=True,
    )
    return llm_call_staged(
        gateway=gateway,
        request=request,
        model=model,
        log=log,
        scope=CallScope(user_id=session.room.owner_id, room_id=session.room_id, session_id=session.pk),
    )


def _transcript_within(*, session: ChatSession, after: int, through: int, tokens: int) -> str:
    """The non-failed turns in (after, through], newest kept first when they do not all fit."""
    rows = list(
        Turn.objects.filter(session=session, turn_index__gt=after, turn_index__lte=through)
        .exclude(status=Turn.Status.FAILED)
        .order_by("-turn_index")
        .values_list("turn_index", "user_input", "assistant_output", "context_tokens")
    )
    kept, used = [], 0
    for index, user_input, output, cost in rows:
        if kept and used + cost > tokens:
            break
        kept.append((index, user_input, output))
        used += cost
    return transcript_build(list(reversed(kept)))


def summary_enqueue(*, session_id: uuid.UUID, through_index: int) -> None:
    """After commit: hand the summary to Celery. Never fails the caller: if the broker is down the
    summary stays due on the session and the periodic sweep produces it later."""
    try:
        celery_app.tasks[SUMMARY_TASK].delay(str(session_id), through_index)
    except Exception:
        logger.exception(
            "could not enqueue the summary of %s through %s; the sweep will", session_id, through_index
        )
