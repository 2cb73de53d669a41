"""A room served as a model: one chat completion is one Pantheon turn, in the session the client's
history belongs to (docs/openai-compatible.md).

Which session: the one the user's ``Idempotency-Key`` row already records (a retry); else an
explicit one; then the session whose transcript has the fingerprint of the history the client resent
(it continues); then a session with a turn whose transcript through it has that fingerprint (the
client regenerated or edited a later message: the conversation forks into a new session that copies
the turns up to there); then a turn whose reply the history's last one is a prefix of (the client
stopped the stream and kept part: the turn is cut to it); else a new session. Once the turn holds
the session's claim it checks that no turn came after the history's last (else it looks again, and
forks). A session opened here for a turn that is then refused is deleted again, so a refused request
leaves nothing behind.
"""

import bisect
import hashlib
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from json.encoder import encode_basestring_ascii

from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from openai_compat import selectors
from openai_compat.errors import ConversationInvalid
from openai_compat.fingerprint import (
    ASSISTANT,
    USER,
    TranscriptMessage,
    content_normalize,
    fingerprint_of,
    transcript_normalize,
    turn_fingerprint,
)
from openai_compat.models import ApiKey, IdempotencyKey, KeptReply, api_key_hash
from orchestration.context import turn_context_tokens
from orchestration.errors import IdempotencyKeyReused, TurnConflict
from orchestration.modes import agents_select_manual
from orchestration.turns import (
    TurnOutcome,
    TurnProgress,
    TurnRequest,
    turn_prepare,
    turn_request_build,
)
from orchestration.turns.preview import TurnPreview, turn_preview
from pantheon.errors import ApplicationError, NotFound
from rooms.models import Room
from rooms.selectors import agent_list
from sessions_app.models import ChatSession, Message, SessionSummary, Turn
from sessions_app.selectors import session_get
from sessions_app.services import session_create, session_delete

logger = logging.getLogger(__name__)

HEAD_LOOKUPS = 3  # a request whose session keeps moving on under it is refused 409 (retryable)
TITLE_MAX_CHARS = 80
_WORD = re.compile(r"\S+")  # a word as ``str.split()`` finds them
CLIENT_TASK_MARK, CLIENT_TASK_TITLE = "### Task:", "[client task]"
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


@dataclass(frozen=True)
class Resolved:
    """The session a request runs in. ``head_index``: the last turn of it the client's history holds
    (the turn checks after its claim that none came since); None for a session the client named."""

    session: ChatSession
    opened: bool = False
    forked_from: ChatSession | None = None
    head_index: int | None = None


class HeadMoved(Exception):
    """The session moved on (another turn committed) between the lookup and the claim."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__(f"session {session_id} moved on")
        self.session_id = session_id


def chat_turn_prepare(
    *,
    user,
    model_id: str,
    messages: list[TranscriptMessage],
    session_id: uuid.UUID | str | None = None,
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
    discussion: dict | None = None,
) -> ChatTurn:
    """Find (or open) the session and make every check of the turn before its first LLM call.

    With an ``Idempotency-Key``, the user's key row is taken first (``_key_session``): twins wait
    for it and follow the session it records. Once the turn holds the session's claim, it checks
    that the conversation's head has not moved (``_head_check``); if it has, the request looks its
    session up again — it forks at the turn its history matches — at most ``HEAD_LOOKUPS`` times.

    Raises ``ApplicationError`` on refusal, with nothing written.
    """
    model = selectors.room_model_get(user=user, model_id=model_id)
    history, request = _chat_request(
        user=user,
        model=model,
        messages=messages,
        idempotency_key=idempotency_key,
        api_key_id=api_key_id,
        discussion=discussion,
    )
    moved_from = None
    key_fingerprint = (
        _key_fingerprint(model=model, messages=messages, session_id=session_id)
        if request.idempotency_key
        else None
    )
    for _ in range(HEAD_LOOKUPS):
        with transaction.atomic():
            if key_fingerprint is not None:
                resolved, key_taken = _key_session(
                    request=request,
                    fingerprint=key_fingerprint,
                    moved_from=moved_from,
                    resolve=lambda: _session_resolve(
                        model=model, request=request, history=history, session_id=session_id
                    ),
                )
            else:
                resolved, key_taken = (
                    _session_resolve(model=model, request=request, history=history, session_id=session_id),
                    False,
                )
        session = resolved.session
        try:
            prepared = turn_prepare(
                replace(
                    request, session_id=session.pk, after_claim=_head_check(session.pk, resolved.head_index)
                )
            )
        except HeadMoved as moved:
            moved_from = moved.session_id
            continue
        except ApplicationError:
            if resolved.opened:
                session_delete(session=session)
            if key_taken:
                IdempotencyKey.objects.filter(
                    user=user, key=request.idempotency_key, session=session
                ).delete()
            raise
        return ChatTurn(model=model, session=session, prepared=prepared, forked_from=resolved.forked_from)
    raise TurnConflict("The conversation moved on while this message waited: send it again.")


def _key_fingerprint(*, model: selectors.RoomModel, messages: list[TranscriptMessage], session_id) -> str:
    """What an ``Idempotency-Key`` stands for: the model, the session named and the conversation —
    the SHA-256 of ``json.dumps([model_id, session_id, [[role, content], …]])``, written directly
    (not a million small lists built for ``json.dumps``)."""
    as_json = encode_basestring_ascii
    conversation = ", ".join(
        f"[{as_json(m.role)}, {as_json(content_normalize(m.content))}]" for m in messages
    )
    body = f"[{as_json(model.id)}, {as_json(str(session_id or ''))}, [{conversation}]]"
    return hashlib.sha256(body.encode()).hexdigest()


def _key_session(*, request: TurnRequest, fingerprint: str, moved_from, resolve) -> tuple[Resolved, bool]:
    """Inside a transaction: take (or wait for, then lock) the user's row for the request's key, and
    return the session it records — or, the first time (or when that session moved on under the
    request, ``moved_from``), the one ``resolve`` finds, recorded for the twins. The bool: whether
    this request chose the session (so a refusal gives the key back)."""
    user, key = request.user, request.idempotency_key
    IdempotencyKey.objects.bulk_create(
        [IdempotencyKey(user=user, key=key, request_fingerprint=fingerprint)], ignore_conflicts=True
    )
    entry = (
        IdempotencyKey.objects.select_for_update(of=("self",))
        .select_related("session")
        .get(user=user, key=key)
    )
    if entry.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused("This Idempotency-Key was already used with a different request.")
    session = entry.session
    if session is not None and session.deleted_at is None and session.pk != moved_from:
        return Resolved(session=session, head_index=entry.head_turn_index), False
    resolved = resolve()
    entry.session, entry.head_turn_index = resolved.session, resolved.head_index
    entry.save(update_fields=["session", "head_turn_index"])
    return resolved, True


def _head_check(session_id: uuid.UUID, head_index: int | None):
    """The check the turn runs once it holds the session's claim: no turn (but a failed one) came
    after the last one the client's history holds. Free when no turn came at all."""
    if head_index is None:
        return None

    def check(claim) -> None:
        if claim.last_turn_index <= head_index:
            return
        later = Turn.objects.filter(session_id=session_id, turn_index__gt=head_index)
        if later.exclude(status=Turn.Status.FAILED).exists():
            raise HeadMoved(session_id)

    return check


def _chat_request(
    *,
    user,
    model: selectors.RoomModel,
    messages: list[TranscriptMessage],
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
    discussion: dict | None = None,
) -> tuple[list[TranscriptMessage], TurnRequest]:
    """The conversation's history and the turn its last message asks for (its session is found
    later): the one request a completion runs and its preview prices."""
    history, user_input = _conversation_split(messages)
    request = turn_request_build(
        user=user,
        session_id="",
        user_input=user_input,
        mode=_mode_for(model, user_input),
        idempotency_key=idempotency_key,
        api_key_id=api_key_id,
        # ``room-<id>:discussion``: the client's discussion (metadata), else one within DISCUSSION_MAX_STEPS.
        discussion=(discussion or {"until": {}}) if model.mode == selectors.DISCUSSION_MODE else discussion,
    )
    return history, request


def chat_turn_preview(
    *,
    user,
    model_id: str,
    messages: list[TranscriptMessage],
    session_id: uuid.UUID | str | None = None,
    api_key_id: int | None = None,
    discussion: dict | None = None,
) -> TurnPreview:
    """The cost preview of a chat completion (``turn_preview``), in the session the turn would run
    in. A session the turn would open (or fork) is opened only for the preview's reads, then rolled
    back: nothing is kept."""
    with transaction.atomic():
        model = selectors.room_model_get(user=user, model_id=model_id)
        history, request = _chat_request(
            user=user, model=model, messages=messages, api_key_id=api_key_id, discussion=discussion
        )
        resolved = _session_resolve(model=model, request=request, history=history, session_id=session_id)
        preview = turn_preview(replace(request, session_id=resolved.session.pk))
        transaction.set_rollback(True)
    return preview


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
) -> Resolved:
    room = model.room
    if session_id:
        session = session_get(user=request.user, session_id=session_id)
        if session.room_id != room.pk:
            raise NotFound("This session is not one of the model's room.")
        return Resolved(session=session)
    # One pass over the history: the fingerprint before its last two messages (a kept reply's
    # lookup chains on it), then through them.
    before = fingerprint_of(history[:-2])
    fingerprint = fingerprint_of(history[-2:], start=before)
    if history:
        session = selectors.conversation_session_find(room=room, fingerprint=fingerprint)
        if session is not None and session_transcript_record(session=session) == fingerprint:
            head = selectors.transcript_head_index(session=session, fingerprint=fingerprint)
            return Resolved(session=session, head_index=head)
        turn = selectors.conversation_turn_find(room=room, fingerprint=fingerprint)
        if turn is not None:
            fork = session_fork(turn=turn)
            return Resolved(
                session=fork, opened=True, forked_from=turn.session, head_index=fork.last_turn_index
            )
        if (kept := _kept_reply_find(room=room, history=history, before=before)) is not None:
            return kept
    first = next((m.content for m in history if m.role == USER), request.user_input)
    session = session_open(room=room, title=_title_from(first, task=history == []), fingerprint=fingerprint)
    return Resolved(session=session, opened=True, head_index=0)


def _kept_reply_find(*, room: Room, history: list[TranscriptMessage], before: str) -> Resolved | None:
    """A history whose last reply is a prefix of the stored one (the client stopped the stream and
    kept what it had): the turn is cut to what the client kept (``reply_keep``) and the conversation
    goes on from there — in its session when that turn is its head, else in a fork at it.
    ``before``: the fingerprint of the history without its last two messages."""
    if len(history) < 2 or history[-1].role != ASSISTANT or history[-2].role != USER:
        return None
    asked, kept = history[-2].content, history[-1].content
    for turn in selectors.kept_reply_candidates(room=room, user_input=asked, kept=kept):
        if turn.transcript_fingerprint == turn_fingerprint(
            before, user_input=asked, reply=turn.assistant_output
        ):
            break
    else:
        return None
    later = Turn.objects.filter(session_id=turn.session_id, turn_index__gt=turn.turn_index)
    if not later.exclude(status=Turn.Status.FAILED).exists():
        reply_keep(turn=turn, kept=kept, before=before)
        return Resolved(session=turn.session, head_index=turn.turn_index)
    fork = session_fork(turn=turn)
    copy = Turn.objects.get(session=fork, turn_index=fork.last_turn_index)
    reply_keep(turn=copy, kept=kept, before=before)
    return Resolved(session=fork, opened=True, forked_from=turn.session, head_index=fork.last_turn_index)


@transaction.atomic
def reply_keep(*, turn: Turn, kept: str, before: str) -> None:
    """Record that the client kept only ``kept`` of ``turn``'s reply: the reply as made goes to a
    ``KeptReply``; the turn's output, its context size and its fingerprint (chained on ``before``)
    become the kept text's, and so does its session's head fingerprint (``turn`` is its head)."""
    ChatSession.objects.select_for_update(no_key=True).only("id").get(pk=turn.session_id)
    logger.info(
        "turn %s: the client kept %s of %s characters", turn.pk, len(kept), len(turn.assistant_output)
    )
    KeptReply.objects.update_or_create(
        turn=turn,
        create_defaults={"full_output": turn.assistant_output, "kept_chars": len(kept)},
        defaults={"kept_chars": len(kept)},
    )
    turn.assistant_output = kept
    turn.context_tokens = turn_context_tokens(user_input=turn.user_input, assistant_output=kept)
    turn.transcript_fingerprint = turn_fingerprint(before, user_input=turn.user_input, reply=kept)
    turn.save(update_fields=["assistant_output", "context_tokens", "transcript_fingerprint", "updated_at"])
    ChatSession.objects.filter(pk=turn.session_id).update(transcript_fingerprint=turn.transcript_fingerprint)
    turn.session.transcript_fingerprint = turn.transcript_fingerprint


def _title_from(text: str, *, task: bool = False) -> str:
    """The conversation's first message, on one line; a chat client's side task (Open WebUI's title,
    tags, follow-ups …: a lone message starting ``### Task:``) is titled ``[client task] …`` so its
    cost is recognisable among the room's sessions and in usage."""
    if task and text.lstrip().startswith(CLIENT_TASK_MARK):
        task_lines = text.lstrip()[len(CLIENT_TASK_MARK) :].strip().splitlines()
        text = f"{CLIENT_TASK_TITLE} {task_lines[0] if task_lines else ''}"
    # The first words only (``" ".join(text.split())`` cut to the title): a first message may be
    # megabytes long.
    words, length = [], -1
    for word in _WORD.finditer(text):
        words.append(word.group())
        length += 1 + len(words[-1])
        if length > TITLE_MAX_CHARS:
            break
    line = " ".join(words)
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
            stop_reason=t.stop_reason,
            discussion=t.discussion,
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
