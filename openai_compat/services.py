"""A room served as a model: one chat completion is one Pantheon turn, in the session the client's
history belongs to (docs/openai-compatible.md).

Which session: an explicit one wins; then the session of a turn already made with the request's
``Idempotency-Key``; then the session whose transcript has the fingerprint of the history the client
resent (it continues); then a session with a turn whose transcript through it has that fingerprint
(the client regenerated or edited a later message: the conversation forks into a new session that
copies the turns up to there); else a new session. A session opened here for a turn that is then
refused is deleted again, so a refused request leaves nothing behind.
"""

import bisect
import logging
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from openai_compat import selectors
from openai_compat.errors import ConversationInvalid
from openai_compat.fingerprint import (
    USER,
    TranscriptMessage,
    content_normalize,
    fingerprint_of,
    transcript_normalize,
    turn_fingerprint,
)
from openai_compat.models import ApiKey, api_key_hash
from orchestration.modes import agents_select_manual
from orchestration.turns import (
    TurnOutcome,
    TurnProgress,
    TurnRequest,
    turn_prepare,
    turn_request_build,
)
from pantheon.errors import ApplicationError, NotFound
from rooms.models import Room
from rooms.selectors import agent_list
from sessions_app.models import ChatSession, Message, SessionSummary, Turn
from sessions_app.selectors import session_get
from sessions_app.services import session_create, session_delete

logger = logging.getLogger(__name__)

TITLE_MAX_CHARS = 80
API_KEY_PREFIX = "pan-"
API_KEY_USE_GRANULARITY = timedelta(minutes=1)


@dataclass
class ChatTurn:
    """A chat completion's turn, ready to run: its session and what ``turn_prepare`` returned (a
    ``TurnProgress`` to run, or the stored ``TurnOutcome`` of a replayed ``Idempotency-Key``)."""

    model: selectors.RoomModel
    session: ChatSession
    prepared: TurnProgress | TurnOutcome
    forked_from: ChatSession | None = None


def chat_turn_prepare(
    *,
    user,
    model_id: str,
    messages: list[TranscriptMessage],
    session_id: uuid.UUID | str | None = None,
    idempotency_key: str | None = None,
    discussion: dict | None = None,
) -> ChatTurn:
    """Find (or open) the session and make every check of the turn before its first LLM call.

    Raises ``ApplicationError`` on refusal, with nothing written.
    """
    model = selectors.room_model_get(user=user, model_id=model_id)
    history, user_input = _conversation_split(messages)
    request = turn_request_build(
        user=user,
        session_id="",
        user_input=user_input,
        mode=_mode_for(model, user_input),
        idempotency_key=idempotency_key,
        # ``room-<id>:discussion``: the client's discussion (metadata), else one within DISCUSSION_MAX_STEPS.
        discussion=(discussion or {"until": {}}) if model.mode == selectors.DISCUSSION_MODE else discussion,
    )
    session, opened, forked_from = _session_resolve(
        model=model, request=request, history=history, session_id=session_id
    )
    try:
        prepared = turn_prepare(replace(request, session_id=session.pk))
    except ApplicationError:
        if opened:
            session_delete(session=session)
        raise
    return ChatTurn(model=model, session=session, prepared=prepared, forked_from=forked_from)


def chat_turn_record(*, chat: ChatTurn, outcome: TurnOutcome, sent_reply: str | None = None) -> None:
    """After a committed turn: record the session's transcript fingerprint through it, over the
    reply exactly as the client received it (``sent_reply`` when it was streamed).

    Never raises: the turn is committed and paid for, and a fingerprint not recorded now is
    recorded (from the stored reply) the next time the session is looked at.
    """
    sent = {outcome.turn.pk: sent_reply} if sent_reply is not None else {}
    try:
        _transcript_chain(session=chat.session, sent_replies=sent)  # the new turn is pending: no check
    except Exception:
        logger.exception("could not record the transcript fingerprint of turn %s", outcome.turn.pk)


def _conversation_split(messages: list[TranscriptMessage]) -> tuple[list[TranscriptMessage], str]:
    """The history the client resent (normalized) and the turn's input: the last message, the
    user's."""
    if not messages:
        raise ConversationInvalid.messages("at least one message is needed.")
    if messages[-1].role != USER:
        raise ConversationInvalid.messages("the last message must be the user's (the turn's input).")
    if not content_normalize(messages[-1].content):
        raise ConversationInvalid.messages("the last user message is empty.")
    normalized = transcript_normalize(messages)  # ends with the last message, as it is not empty
    return normalized[:-1], normalized[-1].content


def _mode_for(model: selectors.RoomModel, user_input: str) -> str:
    if model.mode == selectors.DISCUSSION_MODE:
        return Turn.Mode.ORCHESTRATOR
    if model.mode:
        return model.mode
    tagged = agents_select_manual(agents=list(agent_list(room=model.room)), user_input=user_input)
    return Turn.Mode.MANUAL if tagged else Turn.Mode.ORCHESTRATOR


def _session_resolve(
    *,
    model: selectors.RoomModel,
    request: TurnRequest,
    history: list[TranscriptMessage],
    session_id: uuid.UUID | str | None,
) -> tuple[ChatSession, bool, ChatSession | None]:
    """``(session, opened by this request, the session it forks)``."""
    room = model.room
    if session_id:
        session = session_get(user=request.user, session_id=session_id)
        if session.room_id != room.pk:
            raise NotFound("This session is not one of the model's room.")
        return session, False, None
    if request.idempotency_key and (
        turn := selectors.idempotent_turn_find(room=room, idempotency_key=request.idempotency_key)
    ):
        return turn.session, False, None
    fingerprint = fingerprint_of(history)
    if history:
        session = selectors.conversation_session_find(room=room, fingerprint=fingerprint)
        if session is not None and session_transcript_record(session=session) == fingerprint:
            return session, False, None
        turn = selectors.conversation_turn_find(room=room, fingerprint=fingerprint)
        if turn is not None:
            return session_fork(turn=turn), True, turn.session
    first = next((m.content for m in history if m.role == USER), request.user_input)
    return session_open(room=room, title=_title_from(first), fingerprint=fingerprint), True, None


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= TITLE_MAX_CHARS:
        return line
    return line[: TITLE_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip() + "…"


def session_open(*, room: Room, title: str, fingerprint: str) -> ChatSession:
    """A new session for a conversation whose history (fingerprint) Pantheon has not seen: its turns
    chain on from that history, so the client's next request finds it."""
    return session_create(room=room, title=title, transcript_fingerprint=fingerprint)


@transaction.atomic
def session_fork(*, turn: Turn) -> ChatSession:
    """A new session holding copies of ``turn``'s session up to ``turn``: its non-failed turns with
    their messages (renumbered 1, 2, …) and the summaries that cover only them. Not their usage
    (never billed twice), nor their context audits."""
    source = turn.session
    turns = list(
        Turn.objects.filter(session=source, turn_index__lte=turn.turn_index)
        .exclude(status=Turn.Status.FAILED)
        .order_by("turn_index")
        .prefetch_related(Prefetch("messages", queryset=Message.objects.order_by("order")))
    )
    new_index = {t.turn_index: position for position, t in enumerate(turns, start=1)}
    summaries = _summaries_remapped(source=source, through=turn.turn_index, new_index=new_index)
    fork = ChatSession.objects.create(
        room_id=source.room_id,
        title=source.title,
        last_turn_index=len(turns),
        summary_due_through=max((s.covers_through_turn_index for s in summaries), default=None),
        transcript_fingerprint=turn.transcript_fingerprint,
    )
    copies = Turn.objects.bulk_create(
        Turn(
            session=fork,
            turn_index=new_index[t.turn_index],
            mode=t.mode,
            user_input=t.user_input,
            assistant_output=t.assistant_output,
            status=t.status,
            responding_agent_keys=t.responding_agent_keys,
            agent_errors=t.agent_errors,
            routing_used_fallback=t.routing_used_fallback,
            context_tokens=t.context_tokens,
            transcript_fingerprint=t.transcript_fingerprint,
        )
        for t in turns
    )
    Message.objects.bulk_create(
        Message(
            session=fork,
            turn=copy,
            role=m.role,
            agent_key=m.agent_key,
            agent_name=m.agent_name,
            model_alias=m.model_alias,
            mode=m.mode,
            content=m.content,
            order=m.order,
        )
        for copy, original in zip(copies, turns, strict=True)
        for m in original.messages.all()
    )
    for summary in summaries:
        summary.pk, summary.session = None, fork
    SessionSummary.objects.bulk_create(summaries)
    logger.info("session %s forked from %s at turn %s", fork.pk, source.pk, turn.turn_index)
    return fork


def _summaries_remapped(
    *, source: ChatSession, through: int, new_index: dict[int, int]
) -> list[SessionSummary]:
    """The source's summaries covering at most ``through``, with the index each covers in the fork
    (failed turns are not copied, so indices shift); of two landing on one index, the later."""
    by_index: dict[int, SessionSummary] = {}
    copied = sorted(new_index)
    for summary in SessionSummary.objects.filter(
        session=source, covers_through_turn_index__lte=through
    ).order_by("covers_through_turn_index"):
        position = bisect.bisect_right(copied, summary.covers_through_turn_index)
        if position:  # it covers at least one copied turn
            summary.covers_through_turn_index = new_index[copied[position - 1]]
            by_index[summary.covers_through_turn_index] = summary
    return list(by_index.values())


def session_transcript_record(
    *, session: ChatSession, sent_replies: dict[uuid.UUID, str] | None = None
) -> str:
    """Bring the session's transcript fingerprint up to date with its committed turns (those made
    through any API) and return it. A reply in ``sent_replies`` is chained as given (what a stream
    sent) instead of as stored. Turns are chained in order, under the session's row lock, so two
    callers never chain one turn differently."""
    if not selectors.pending_transcript_turns(session=session).exists():
        return session.transcript_fingerprint
    return _transcript_chain(session=session, sent_replies=sent_replies or {})


def _transcript_chain(*, session: ChatSession, sent_replies: dict[uuid.UUID, str]) -> str:
    with transaction.atomic():
        head = (
            ChatSession.objects.select_for_update(no_key=True)
            .values_list("transcript_fingerprint", flat=True)
            .get(pk=session.pk)
        )
        turns = list(selectors.pending_transcript_turns(session=session))
        for t in turns:
            reply = sent_replies.get(t.pk, t.assistant_output)
            head = t.transcript_fingerprint = turn_fingerprint(head, user_input=t.user_input, reply=reply)
        Turn.objects.bulk_update(turns, ["transcript_fingerprint"])
        ChatSession.objects.filter(pk=session.pk).update(transcript_fingerprint=head)
    session.transcript_fingerprint = head
    return head


# --- API keys -------------------------------------------------------------------------------------


def api_key_create(*, user, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``: the row, and the key itself (shown once, never stored)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(30)
    api_key = ApiKey.objects.create(user=user, name=name, prefix=key[:12], key_hash=api_key_hash(key))
    return api_key, key


def api_key_used(*, api_key: ApiKey) -> None:
    """Note when the key was last used, at most once a minute (not a write per request)."""
    now = timezone.now()
    if api_key.last_used_at is not None and api_key.last_used_at >= now - API_KEY_USE_GRANULARITY:
        return  # noted less than a minute ago, as the row read with the key says
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - API_KEY_USE_GRANULARITY)
    ).update(last_used_at=now)


def api_key_revoke(*, api_key: ApiKey) -> None:
    """From now on the key authenticates nothing; revoking twice keeps the first time."""
    api_keys_revoke(keys=ApiKey.objects.filter(pk=api_key.pk))


def api_keys_revoke(*, keys: QuerySet[ApiKey]) -> int:
    """Revoke these keys (the admin's action); returns how many were live."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
