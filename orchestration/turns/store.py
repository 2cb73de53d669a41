"""The turn's database steps, each one PostgreSQL statement, written once (docs/transactions.md):

1. ``scope_load`` — the session (live, of a live room the user owns), the room's live agents, the
   active catalog with its prices and token calibrations, and the turn already stored under the
   request's Idempotency-Key;
2. ``claim_and_context`` — claim the session and, in the same statement, read its counters, the turn
   stored under the key (a twin may have committed), the latest summary, the history window and the
   anchor (``claim_wait`` retries it while another turn holds the session);
3. the credit hold (``usage.services.holds.credit_hold_place``);
4. ``turn_write`` — the commit: the turn, its messages, audits and usage events, the hold's
   settlement on the locked credit account (``usage.services.settlement``), the ledger entry and the
   summary's hold, the session's counter and claim release — atomic as one statement, with no
   transaction around it.

A claim is a token and an expiry on the session row, so a worker that died mid-turn cannot block the
session for ever; ``claim_extend`` renews it during a long answer, ``claim_release`` gives it back
without a turn. Rows are written from model instances, through each field's own database preparation
(``pantheon.db``), so a column added to a model is written here without a second list to keep in step.
"""

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import connection
from django.utils import timezone

from orchestration.context import HistoryTurn, SessionContext
from orchestration.errors import TurnConflict
from pantheon.db import row_select, rows_json, rows_recordset, table
from pantheon.db_connections import connection_release
from pantheon.work_gate import work_gate
from rooms.models import Agent, Room
from sessions_app.models import ChatSession, Message, SessionSummary, Turn, TurnContextAudit
from usage.models import (
    BudgetUsage,
    CreditAccount,
    CreditHold,
    CreditLedgerEntry,
    LlmCallEvent,
    LlmDeployment,
    LlmModel,
    ModelPrice,
    PricingVersion,
    TokenCalibration,
)
from usage.selectors import PricedModel, priced_model_from_json
from usage.services.settlement import (
    BUDGET_SETTLE_SQL,
    BUDGET_SHARES_KEPT_SQL,
    EVENT_BURNED_SQL,
    SETTLEMENT_SQL,
    charge_prefixes,
    settlement_params,
)

T = TypeVar("T")
FAILED = Turn.Status.FAILED.value  # failed turns are never part of a context


@dataclass(frozen=True)
class TurnScope:
    """The session (a live one of a live room the user owns), the room's agents, the active catalog
    with its prices and token calibrations, and the turn already stored under the request's
    Idempotency-Key, if any."""

    session: ChatSession
    agents: list[Agent]
    priced: dict[str, PricedModel]
    replay_turn_id: uuid.UUID | None = None


@dataclass(frozen=True)
class SessionClaim:
    session_id: uuid.UUID
    token: uuid.UUID
    # The highest index taken in the session: its counter, or a stray turn row beyond it.
    last_turn_index: int
    expires_at: datetime
    summary_due_through: int = 0


@dataclass(frozen=True)
class ClaimedContext:
    claim: SessionClaim
    replay_turn_id: uuid.UUID | None
    context: SessionContext


# --- 1. scope ------------------------------------------------------------------------------------

_SCOPE_SQL = f"""
SELECT s.id, s.room_id,
  (SELECT json_agg(json_build_object(
      'id', a.id, 'agent_key', a.agent_key, 'name', a.name, 'model_alias', a.model_alias,
      'role_prompt', a.role_prompt, 'position', a.position,
      'context_window_tokens', a.context_window_tokens) ORDER BY a.position, a.id)
   FROM {table(Agent)} a WHERE a.room_id = s.room_id AND a.deleted_at IS NULL) AS agents,
  (SELECT json_agg(json_build_object(
      'alias', m.alias, 'provider_model', m.provider_model, 'context_window', m.context_window,
      'max_output_tokens', m.max_output_tokens, 'input', p.input_usd_per_million::text,
      'output', p.output_usd_per_million::text, 'version_id', p.version_id,
      'cached_input', p.cached_input_usd_per_million::text,
      'cache_write', p.cache_write_usd_per_million::text,
      'reasoning', p.reasoning_usd_per_million::text,
      'token_ratio', tc.ratio::text, 'token_samples', tc.samples,
      'deployments', (SELECT json_agg(json_build_object(
          'name', d.name, 'position', d.position, 'weight', d.weight, 'base_url', d.base_url,
          'api_key_env', d.api_key_env, 'provider_model', d.provider_model,
          'price', (SELECT json_build_object(
              'input', dp.input_usd_per_million::text, 'output', dp.output_usd_per_million::text,
              'version_id', dp.version_id, 'cached_input', dp.cached_input_usd_per_million::text,
              'cache_write', dp.cache_write_usd_per_million::text,
              'reasoning', dp.reasoning_usd_per_million::text)
            FROM {table(ModelPrice)} dp WHERE dp.model_id = COALESCE(d.price_model_id, m.id)
              AND dp.version_id = (SELECT v.id FROM {table(PricingVersion)} v WHERE v.is_active)))
          ORDER BY d.position, d.name)
        FROM {table(LlmDeployment)} d WHERE d.model_id = m.id AND d.is_active)))
   FROM {table(LlmModel)} m
   LEFT JOIN {table(ModelPrice)} p ON p.model_id = m.id
     AND p.version_id = (SELECT v.id FROM {table(PricingVersion)} v WHERE v.is_active)
   LEFT JOIN {table(TokenCalibration)} tc ON tc.model_id = m.id
   WHERE m.is_active AND (m.alias = ANY(CAST((SELECT %(aliases)s::text[]) AS text[])) OR m.alias IN (
     SELECT a.model_alias FROM {table(Agent)} a WHERE a.room_id = s.room_id AND a.deleted_at IS NULL))
  ) AS models,
  (SELECT t.id FROM {table(Turn)} t
   WHERE t.session_id = s.id AND t.idempotency_key = %(key)s) AS replay
FROM {table(ChatSession)} s JOIN {table(Room)} r ON r.id = s.room_id
WHERE s.id = %(session)s AND s.deleted_at IS NULL AND r.deleted_at IS NULL AND r.owner_id = %(user)s
"""


def scope_load(
    *, user_id: int, session_id: uuid.UUID, idempotency_key: str | None, aliases: set[str]
) -> TurnScope | None:
    """Everything a turn reads before it claims its session, in one statement; None: not found.

    The aliases asked for reach the planner through a sub-select, so their value cannot change its
    estimates: PostgreSQL then keeps one plan for the prepared statement. Seen as a constant, they
    made every plan of the catalog's tiny tables (never analyzed: autovacuum waits for 50 changed
    rows) look cheaper than the generic one, and the statement was planned again on every turn
    (≈ 0.85 ms of the server's time, more than running it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _SCOPE_SQL,
            {"session": session_id, "user": user_id, "key": idempotency_key, "aliases": sorted(aliases)},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    session_pk, room_id, agents, catalog, replay = row
    session = ChatSession(id=session_pk, room_id=room_id)
    session._state.adding = False
    return TurnScope(
        session=session,
        agents=[_agent(room_id, a) for a in agents or ()],
        priced={m["alias"]: priced_model_from_json(m) for m in catalog or ()},
        replay_turn_id=replay,
    )


def _agent(room_id: uuid.UUID, fields: dict) -> Agent:
    agent = Agent(room_id=room_id, **fields)
    agent._state.adding = False
    return agent


# --- 2. claim, with the session's past --------------------------------------------------------------

_CLAIM_TAKE = f"""claimed AS (
  UPDATE {table(ChatSession)} SET claim_token = %(token)s, claim_expires_at = %(expires)s
  WHERE id = %(session)s AND (claim_token IS NULL OR claim_expires_at < %(now)s)
  RETURNING id, last_turn_index, summary_due_through
)"""
# The cost preview reads the same past without claiming the session (no write, no wait).
_CLAIM_PEEK = f"""claimed AS (
  SELECT id, last_turn_index, summary_due_through FROM {table(ChatSession)} WHERE id = %(session)s
)"""
_CONTEXT_SQL = f""",
latest_summary AS (
  SELECT summary_text, covers_through_turn_index FROM {table(SessionSummary)}
  WHERE session_id = %(session)s ORDER BY covers_through_turn_index DESC LIMIT 1
),
after_summary AS MATERIALIZED (
  -- Newest first, from the history index alone: the running total that decides which turns still fit.
  SELECT turn_index, context_tokens,
    SUM(context_tokens) OVER (ORDER BY turn_index DESC) AS running_tokens,
    ROW_NUMBER() OVER (ORDER BY turn_index DESC) AS recency
  FROM {table(Turn)}
  WHERE session_id = %(session)s AND status <> %(failed)s
    AND turn_index > COALESCE((SELECT covers_through_turn_index FROM latest_summary), 0)
  ORDER BY turn_index DESC
)
SELECT c.last_turn_index, c.summary_due_through,
  (SELECT MAX(turn_index) FROM {table(Turn)} WHERE session_id = %(session)s),
  (SELECT id FROM {table(Turn)} WHERE session_id = %(session)s AND idempotency_key = %(key)s),
  (SELECT summary_text FROM latest_summary),
  (SELECT covers_through_turn_index FROM latest_summary),
  (SELECT json_agg((
      -- One lookup per turn that fits: a long session's other turns are never read.
      SELECT json_build_object('i', t.turn_index, 'u', t.user_input, 'a', t.assistant_output,
                               't', t.context_tokens)
      FROM {table(Turn)} t WHERE t.session_id = %(session)s AND t.turn_index = k.turn_index
    ) ORDER BY k.turn_index)
   FROM after_summary k WHERE k.running_tokens <= %(max_tokens)s OR k.recency <= %(recent)s),
  (SELECT SUM(context_tokens) FROM after_summary),
  (SELECT COUNT(*) FROM after_summary),
  -- The anchor, the first turn not failed: its index from the history index alone (the scan stops
  -- there), then that turn's text. Asked in one go, PostgreSQL read and sorted all the session's
  -- turns (a generic plan expects few per session): ~2.7 ms a turn in a session of 1,000.
  (SELECT json_build_object('i', t.turn_index, 'u', t.user_input) FROM {table(Turn)} t
   WHERE t.session_id = %(session)s AND t.turn_index = (
     SELECT f.turn_index FROM {table(Turn)} f WHERE f.session_id = %(session)s AND f.status <> %(failed)s
     ORDER BY f.turn_index LIMIT 1))
FROM claimed c
"""
_CLAIM_SQL = "WITH " + _CLAIM_TAKE + _CONTEXT_SQL
_PEEK_SQL = "WITH " + _CLAIM_PEEK + _CONTEXT_SQL


def claim_wait(attempt: Callable[[], T | None]) -> T:
    """Call ``attempt`` (one try at the claim: a result, or None while the session is busy) until it
    succeeds, for up to ``TURN_CLAIM_WAIT_SECONDS``; raise ``TurnConflict`` (409 with Retry-After)
    past that. Waiting is polling — no lock, no transaction — with jitter, so waiters don't retry in
    lockstep."""
    deadline = time.monotonic() + settings.TURN_CLAIM_WAIT_SECONDS
    pause = 0.01
    while True:
        result = attempt()
        if result is not None:
            return result
        if time.monotonic() + pause > deadline:
            raise TurnConflict()
        connection_release()  # no pooled connection kept through the pause
        with work_gate().outside():
            time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.2)


def claim_and_context(
    *,
    session_id: uuid.UUID,
    token: uuid.UUID,
    ttl_seconds: float,
    idempotency_key: str | None,
    max_history_tokens: int,
) -> ClaimedContext | None:
    """Try once to claim the session; with the claim, everything of its past a turn may show its
    agents: the latest summary, the history after it that can still fit ``max_history_tokens`` (plus
    the most recent turns), the anchor. A session of thousands of turns costs the same as a short one.
    None: another turn holds the session."""
    now = timezone.now()
    expires_at = now + timedelta(seconds=ttl_seconds)
    return _context_read(
        _CLAIM_SQL,
        session_id=session_id,
        token=token,
        expires_at=expires_at,
        params={
            "token": token,
            "expires": expires_at,
            "now": now,
            "key": idempotency_key,
            "max_tokens": max_history_tokens,
        },
    )


def context_peek(*, session_id: uuid.UUID, max_history_tokens: int) -> ClaimedContext | None:
    """What ``claim_and_context`` reads, without claiming the session (the cost preview): the claim
    it returns is a stand-in that holds nothing."""
    return _context_read(
        _PEEK_SQL,
        session_id=session_id,
        token=uuid.uuid4(),
        expires_at=timezone.now(),
        params={"key": None, "max_tokens": max_history_tokens},
    )


def _context_read(
    sql: str, *, session_id: uuid.UUID, token: uuid.UUID, expires_at: datetime, params: dict
) -> ClaimedContext | None:
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                **params,
                "session": session_id,
                "recent": settings.CONTEXT_RECENT_TURNS_TO_KEEP,
                "failed": FAILED,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    last, due, stored_max, replay, summary_text, covered, history, all_tokens, all_count, anchor = row
    # A turn row already at or past the counter (an expired claim's late owner) is found here, before
    # any call: the turn continues from the highest stored index instead of failing at its write.
    last_index = max(last, stored_max or 0)
    return ClaimedContext(
        claim=SessionClaim(
            session_id=session_id,
            token=token,
            last_turn_index=last_index,
            expires_at=expires_at,
            summary_due_through=due or 0,
        ),
        replay_turn_id=replay,
        context=SessionContext(
            summary_text=summary_text,
            summary_covers_through=covered or 0,
            history=tuple(HistoryTurn(h["i"], h["u"], h["a"], h["t"]) for h in history or ()),
            history_total_tokens=all_tokens or 0,
            history_total_count=all_count or 0,
            anchor_turn_index=anchor["i"] if anchor else None,
            anchor_text=anchor["u"] if anchor else None,
            next_turn_index=last_index + 1,
            summary_requested_through=max(due or 0, covered or 0),
        ),
    )


def claim_extend(*, claim: SessionClaim, ttl_seconds: float) -> SessionClaim | None:
    """Push the claim's expiry (a long streamed turn); None if the claim was lost meanwhile."""
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds)
    kept = ChatSession.objects.filter(pk=claim.session_id, claim_token=claim.token).update(
        claim_expires_at=expires_at
    )
    return replace(claim, expires_at=expires_at) if kept else None


def claim_release(*, claim: SessionClaim) -> None:
    """Give the claim back without writing a turn (replay, refusal, failure). Harmless if lost."""
    ChatSession.objects.filter(pk=claim.session_id, claim_token=claim.token).update(
        claim_token=None, claim_expires_at=None
    )


# --- 4. the commit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnWritten:
    """What the commit statement decided: the turn's index and the credits it debited; each event's
    ``credits_burned`` / ``credits_unbilled`` / ``provider_overshoot`` are set from its RETURNING."""

    turn_index: int
    debited: Decimal


def turn_write(
    *,
    turn: Turn,
    claimed_last_index: int,
    messages: list[Message],
    audits: list[TurnContextAudit],
    events: list[LlmCallEvent],
    hold_id: uuid.UUID | None,
    ledger: CreditLedgerEntry,
    summary_hold: CreditHold,
    now: datetime,
) -> TurnWritten | None:
    """Commit a turn in one statement (atomic by itself: no transaction around it).

    Every write depends on the session's claim still being the turn's: the session's counter and
    claim release, the turn, its messages, audits and usage events, the hold's release and the
    account's settlement (``SETTLEMENT_SQL``), each event's share of the debit (``EVENT_BURNED_SQL``),
    the ledger entry and the summary's hold. Returns None when the claim was lost — and then nothing
    at all was written.
    """
    user_id = ledger.user_id
    keep = summary_hold.amount  # 0: no summary asked for (the hold's part of the statement adds no row)
    charges = [e.credits_burned if e.billable else Decimal(0) for e in events]
    turn_columns, turn_select, turn_params = row_select(turn, computed={"turn_index": "s.idx"})
    ctes: list[tuple[str, list]] = [
        (
            f"""s AS (
  UPDATE {table(ChatSession)} SET
    last_turn_index = GREATEST(last_turn_index, %s) + 1,
    summary_due_through = CASE WHEN %s
      THEN GREATEST(COALESCE(summary_due_through, 0), GREATEST(last_turn_index, %s) + 1)
      ELSE summary_due_through END,
    claim_token = NULL, claim_expires_at = NULL, updated_at = %s
  WHERE id = %s AND claim_token = %s
  RETURNING last_turn_index AS idx
)""",
            [claimed_last_index, turn.summary_triggered, claimed_last_index, now, turn.session_id, turn.pk],
        ),
        (
            f"""released AS (
  DELETE FROM {table(CreditHold)} WHERE id = %s AND EXISTS (SELECT 1 FROM s)
  RETURNING amount, budget_shares
),
account AS (
  SELECT balance, held FROM {table(CreditAccount)} WHERE user_id = %s AND EXISTS (SELECT 1 FROM s)
  FOR UPDATE
),
calc AS (
  SELECT {SETTLEMENT_SQL}
  FROM account a, (SELECT COALESCE((SELECT amount FROM released), 0) AS amount) r
),
settled AS (
  UPDATE {table(CreditAccount)} SET balance = calc.balance - calc.debit,
    held = calc.held - (calc.released - calc.kept), updated_at = %s
  FROM calc WHERE user_id = %s RETURNING {table(CreditAccount)}.balance AS balance_after
)""",
            [hold_id, user_id, *settlement_params(charge=sum(charges, Decimal(0)), keep=keep), now, user_id],
        ),
        (f"t AS (INSERT INTO {table(Turn)} ({turn_columns}) SELECT {turn_select} FROM s)", turn_params),
    ]
    columns, select = rows_recordset(Message)
    ctes.append(
        (
            f"m AS (INSERT INTO {table(Message)} ({columns}) {select} WHERE EXISTS (SELECT 1 FROM s) "
            "RETURNING id)",
            [rows_json(Message, messages)],
        )
    )
    columns, select = rows_recordset(TurnContextAudit)
    ctes.append(
        (
            f"a AS (INSERT INTO {table(TurnContextAudit)} ({columns}) {select} "
            "WHERE EXISTS (SELECT 1 FROM s))",
            [rows_json(TurnContextAudit, audits)],
        )
    )
    columns, select = rows_recordset(
        LlmCallEvent,
        computed={
            "credits_burned": EVENT_BURNED_SQL,
            "credits_unbilled": f"r.charge - {EVENT_BURNED_SQL}",
            "provider_overshoot": f"r.charge > {EVENT_BURNED_SQL}",
        },
        extra={"charge": "numeric", "prefix": "numeric"},
    )
    ctes.append(
        (
            f"e AS (INSERT INTO {table(LlmCallEvent)} ({columns}) {select}, calc "
            "RETURNING id, credits_burned, credits_unbilled, provider_overshoot, model_alias)",
            [rows_json(LlmCallEvent, events, extra={"charge": charges, "prefix": charge_prefixes(charges)})],
        )
    )
    ctes.append((f"bu AS ({BUDGET_SETTLE_SQL.format(usage=table(BudgetUsage))})", []))
    columns, select, params = row_select(
        ledger, computed={"amount": "-calc.debit", "balance_after": "settled.balance_after"}
    )
    ctes.append(
        (
            f"l AS (INSERT INTO {table(CreditLedgerEntry)} ({columns}) SELECT {select} FROM calc, settled "
            "WHERE calc.debit > 0)",
            params,
        )
    )
    # Always written as a statement part (the text stays the same): no row unless a share is kept.
    columns, select, params = row_select(
        summary_hold,
        computed={
            "amount": "calc.kept",
            "covers_through_turn_index": "s.idx",
            "budget_shares": BUDGET_SHARES_KEPT_SQL,
        },
    )
    ctes.append(
        (
            f"h AS (INSERT INTO {table(CreditHold)} ({columns}) SELECT {select} FROM s, calc "
            "WHERE calc.kept > 0)",
            params,
        )
    )
    sql = (
        "WITH "
        + ",\n".join(c for c, _ in ctes)
        + "\nSELECT s.idx, calc.debit, (SELECT array_agg(id ORDER BY id) FROM m),"
        " (SELECT json_agg(json_build_array(id, credits_burned::text, credits_unbilled::text,"
        " provider_overshoot)) FROM e) FROM s, calc"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [p for _, ps in ctes for p in ps])
        row = cursor.fetchone()
    if row is None:
        return None
    index, debited, message_ids, billed = row
    # Ids come from one sequence, in the order the rows were inserted: the messages' own order.
    for message, pk in zip(messages, message_ids or (), strict=False):
        message.pk = pk
        message._state.adding = False
    by_id = {
        uuid.UUID(pk): (Decimal(burned), Decimal(unbilled), over)
        for pk, burned, unbilled, over in billed or ()
    }
    for event in events:
        event.credits_burned, event.credits_unbilled, event.provider_overshoot = by_id[event.pk]
        event._state.adding = False
    return TurnWritten(turn_index=index, debited=debited)
