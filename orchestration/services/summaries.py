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
from orchestration.errors import SummaryBusy
from orchestration.llm.gateway import LlmGateway, LlmRequest
from orchestration.llm.registry import gateway_get
from orchestration.llm.tokens import count_message_tokens, text_within_tokens
from orchestration.parsing import extraction_parse, summary_parse
from orchestration.prompts import extraction_prompt_build, summary_prompt_build, transcript_build
from orchestration.services.calls import CallLog, CallScope, llm_call_staged
from orchestration.summary_claims import summary_claim_confirm, summary_claim_release, summary_claim_take
from pantheon.celery import app as celery_app
from pantheon.logging import turn_log_context
from pantheon.observability import SummaryObserved, observe
from sessions_app.models import ChatSession, SessionSummary, Turn
from usage.calibration import ONE
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
    index (or a later one) is returned as it is and nothing is called or billed again.

    One at a time per session (``orchestration.summary_claims``): while another summary of the
    session is being made this raises ``SummaryBusy`` and the task tries again later, so each
    summary starts from the one before it and every turn is summarised once."""
    session = ChatSession.objects.select_related("room").filter(pk=session_id).first()
    hold = summary_hold_find(session_id=session_id, through_index=through_index)
    if session is None:
        logger.warning("summary skipped: session %s no longer exists", session_id)
        if hold is not None:
            credit_hold_release(hold=hold)
        return None
    done = _summary_made(session, through_index, hold)
    if done is not None:
        return done
    if hold is None:
        hold = _summary_hold_place(session=session, through_index=through_index)
    token = summary_claim_take(session_id=session.pk, hold=hold)  # or SummaryBusy: the task retries
    try:
        with turn_log_context(f"summary:{session.pk}:{through_index}"):
            return _summary_make(session, through_index, hold, token, gateway)
    finally:
        summary_claim_release(session_id=session.pk, token=token)


def _summary_made(session: ChatSession, through_index: int, hold) -> SessionSummary | None:
    """The summary covering ``through_index`` if one exists (its hold, if any, is given back)."""
    done = SessionSummary.objects.filter(
        session=session, covers_through_turn_index__gte=through_index
    ).first()
    if done is not None:
        if hold is not None:  # made already (a retried task, or a later summary covers it)
            credit_hold_release(hold=hold)
        observe(SummaryObserved(outcome="existing", session_id=str(session.pk), through_index=through_index))
    return done


def _summary_make(session: ChatSession, through_index: int, hold, token, gateway) -> SessionSummary | None:
    """With the session's summary claim held: build on the latest summary, write if still latest."""
    done = _summary_made(session, through_index, hold)  # again: one may have been written before the claim
    if done is not None:
        return done
    previous = (
        SessionSummary.objects.filter(session=session, covers_through_turn_index__lt=through_index)
        .order_by("-covers_through_turn_index")
        .first()
    )
    alias = settings.SUMMARY_MODEL_ALIAS
    model = priced_models_get(aliases={alias}).get(alias)
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
    summary_text, summary_fallback = summary_parse(raw_summary, previous=previous_text, transcript=transcript)
    if model is not None:
        raw_extraction = _call(
            gateway, model, log, session, "extraction", extraction_prompt_build(summary_text=summary_text)
        )
    extraction, extraction_fallback = extraction_parse(raw_extraction, summary_text=summary_text)

    try:
        with transaction.atomic():
            if not summary_claim_confirm(session_id=session.pk, token=token, previous=previous):
                raise SummaryOvertaken
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
    except (IntegrityError, SummaryOvertaken):
        # The claim expired and another run wrote first (a worker slower than the claim's worst case):
        # ours is not kept, its calls were still made. The next run builds on what was written.
        logger.warning("summary through=%s overtaken by a concurrent one; not written", through_index)
        usage_events_write_orphaned(events=log.events)
        done = _summary_made(session, through_index, hold)
        if done is None:  # a summary of earlier turns was written: build on it, on the next try
            raise SummaryBusy(session_id=str(session.pk)) from None
        return done
    except Exception:
        usage_events_write_orphaned(events=log.events)
        observe(SummaryObserved(outcome="failed", session_id=str(session.pk), through_index=through_index))
        raise
    logger.info(
        "summary written through=%s fallbacks=%s/%s", through_index, summary_fallback, extraction_fallback
    )
    observe(SummaryObserved(outcome="made", session_id=str(session.pk), through_index=through_index))
    return summary


def _summary_hold_place(*, session: ChatSession, through_index: int) -> CreditHold | None:
    """A summary found without its hold (the turn could not keep a share, or the sweep freed it)
    reserves its own worst case before its first call. If the balance cannot cover it the summary is
    still made — the session's agents need it — and its cost stays unbilled: nothing is ever charged
    beyond a hold. (A retry of a busy session finds this hold again: same session and index.)"""
    alias = settings.SUMMARY_MODEL_ALIAS
    worst = summary_worst_case(priced=priced_models_get(aliases={alias}))
    if worst is None:  # no summary model: the fallbacks make it, nothing is called
        return None
    try:
        return credit_hold_place(
            hold=HoldRequest(
                user_id=session.room.owner_id,
                kind=CreditHold.Kind.SUMMARY,
                amount=worst.credits,
                cost_usd=worst.cost_usd,
                model_alias=alias,
                room_id=session.room_id,
                session_id=session.pk,
                covers_through_turn_index=through_index,
                expires_at=summary_hold_expiry(),
            ),
            budgets=BudgetClaim(room_id=session.room_id, parts={alias: worst.credits}),
        )
    except (InsufficientCredits, BudgetExceeded) as exc:
        logger.warning("summary through %s made unbilled: %s", through_index, exc.code)
    except IntegrityError:  # a concurrent run of the same summary placed it first
        return summary_hold_find(session_id=session.pk, through_index=through_index)
    return None


class SummaryOvertaken(Exception):
    """At the write: the claim is no longer ours, or a summary was written since ours began."""


def _summary_budget(model: PricedModel | None) -> Budget:
    return Budget.for_agent(
        context_window_tokens=None,
        model_context_window=model.context_window if model else settings.CONTEXT_WINDOW_TOKENS,
        model_max_output_tokens=SUMMARY_MAX_OUTPUT_TOKENS,
        token_ratio=model.token_ratio if model else ONE,
    )


def summary_worst_case(*, priced: dict[str, PricedModel]) -> Charge | None:
    """The most a summary (both stages) can cost at current prices: the summary call with its whole
    budget as input, the extraction with a full summary as input, each with its full output."""
    model = priced.get(settings.SUMMARY_MODEL_ALIAS)
    if model is None:
        return None
    budget = _summary_budget(model)
    stages = [  # input in local counts, calibrated where it is priced
        (budget.tokens, SUMMARY_MAX_OUTPUT_TOKENS),
        (SUMMARY_MAX_OUTPUT_TOKENS + EXTRACTION_PROMPT_TOKENS, SUMMARY_MAX_OUTPUT_TOKENS),
    ]
    charges = [
        charge_compute(
            input_tokens=model.input_calibrated(i),
            output_tokens=o,
            price=model.worst_price,
            credits_per_usd=settings.CREDITS_PER_USD,
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
    """The non-failed turns in (after, through], newest kept first when they do not all fit; never more
    than ``tokens`` (a turn larger than the whole window alone — a provider that ignored
    ``max_tokens`` — is cut), so the summary's input stays within what its hold was sized for."""
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
    return text_within_tokens(transcript_build(list(reversed(kept))), max(tokens, 0))


def summary_enqueue(*, session_id: uuid.UUID, through_index: int) -> None:
    """After commit: hand the summary to Celery. Never fails the caller: if the broker is down the
    summary stays due on the session and the periodic sweep produces it later."""
    try:
        celery_app.tasks[SUMMARY_TASK].delay(str(session_id), through_index)
    except Exception:
        logger.exception(
            "could not enqueue the summary of %s through %s; the sweep will", session_id, through_index
        )
