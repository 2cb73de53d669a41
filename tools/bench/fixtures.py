"""The bench's users, rooms and sessions, written through Pantheon's own services (prior turns in
bulk). Every run makes new ones: nothing depends on what an earlier run left."""

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model

from orchestration.context import turn_context_tokens
from rooms.models import Room
from rooms.services import agent_create, room_create
from sessions_app.models import ChatSession, Message, SessionSummary, Turn
from sessions_app.services import session_create
from usage.services.accounts import credit_account_open
from usage.services.tokens import api_token_issue, api_token_used

# Enough credits that no bench turn is ever refused for money (holds included).
BALANCE = Decimal("1000000000")
WRITER = {"agent_key": "writer", "name": "Writer", "model_alias": "deepseek"}
ROUNDTABLE = (
    WRITER,
    {"agent_key": "researcher", "name": "Researcher", "model_alias": "qwen"},
    {"agent_key": "critic", "name": "Critic", "model_alias": "deepseek"},
)


@dataclass
class Client:
    """One user of the bench: a token, a one-agent room, a session for turns, one for the floor."""

    token: str
    session: str
    floor_session: str
    sessions_by_length: dict[int, str] = field(default_factory=dict)
    roundtable_session: str = ""


def _user_make() -> tuple[object, str]:
    user = get_user_model().objects.create_user(username=f"bench-{uuid.uuid4().hex[:12]}", password=None)
    credit_account_open(user=user, opening_balance=BALANCE)
    token, raw = api_token_issue(user=user)
    api_token_used(token=token)  # its last use noted: the measured requests write nothing for it
    return user, raw


def _room_make(owner, name: str, agents: tuple[dict, ...]) -> Room:
    room = room_create(owner=owner, name=name)
    for position, agent in enumerate(agents):
        agent_create(room=room, position=position, **agent)
    return room


SUMMARY_TEXT = (
    "The writer and the user are drafting a novel about a lighthouse keeper on a northern island. "
    "Each chapter follows the keeper through one storm; the user asks what each chapter should cover "
    "and the writer proposes its arc, its weather and the keeper's doubts. Decided so far: first "
    "person, present tense, one storm per chapter, the keeper's daughter appears from chapter three. "
) * 2


def _session_with_prior_turns(room: Room, length: int) -> str:
    """A session with ``length`` completed single-agent turns behind it — and, as production would
    have made (every ``CONTEXT_MANDATORY_SUMMARY_TURN``-th turn asks for one), the summary of those
    turns up to the last multiple of that number."""
    session = session_create(room=room, title=f"{length} prior turns")
    turns, messages = [], []
    for i in range(1, length + 1):
        user_input = f"Prior question number {i}: what should the chapter {i} be about?"
        output = f"Writer: Chapter {i} should follow the lighthouse keeper through the storm, part {i}."
        turn = Turn(
            session=session,
            turn_index=i,
            mode=Turn.Mode.MANUAL,
            user_input=user_input,
            assistant_output=output,
            status=Turn.Status.COMPLETED,
            responding_agent_keys=["writer"],
            context_tokens=turn_context_tokens(user_input=user_input, assistant_output=output),
        )
        turns.append(turn)
        messages += [
            Message(session=session, turn=turn, role="user", content=user_input, order=0, mode="manual"),
            Message(
                session=session,
                turn=turn,
                role="assistant",
                agent_key="writer",
                agent_name="Writer",
                model_alias="deepseek",
                content=output,
                order=1,
                mode="manual",
            ),
        ]
    Turn.objects.bulk_create(turns, batch_size=500)
    Message.objects.bulk_create(messages, batch_size=1000)
    covered = length - length % settings.CONTEXT_MANDATORY_SUMMARY_TURN
    if covered:
        SessionSummary.objects.create(
            session=session, covers_through_turn_index=covered, summary_text=SUMMARY_TEXT.strip()
        )
    ChatSession.objects.filter(pk=session.pk).update(
        last_turn_index=length, summary_due_through=covered or None
    )
    return str(session.pk)


def latency_client(lengths: list[int]) -> Client:
    """The latency measurement's user: a session per length and a three-agent roundtable."""
    user, token = _user_make()
    room = _room_make(user, "Bench room", (WRITER,))
    roundtable_room = _room_make(user, "Bench roundtable", ROUNDTABLE)
    return Client(
        token=token,
        session=_session_with_prior_turns(room, 0),
        floor_session=str(session_create(room=room, title="floor").pk),
        sessions_by_length={length: _session_with_prior_turns(room, length) for length in lengths},
        roundtable_session=str(session_create(room=roundtable_room, title="roundtable").pk),
    )


def load_clients(count: int) -> list[Client]:
    """One user per load client, so no per-user limit answers before the server's capacity does."""
    clients = []
    for i in range(count):
        user, token = _user_make()
        room = _room_make(user, f"Bench load {i}", (WRITER,))
        clients.append(
            Client(
                token=token,
                session=str(session_create(room=room, title="load").pk),
                floor_session=str(session_create(room=room, title="floor").pk),
            )
        )
    return clients


@dataclass(frozen=True)
class CapacityClient:
    """A user of the capacity bursts: a session for a plain turn, one for a streamed turn, and one in
    a three-agent room (``None`` beyond the roundtables asked for)."""

    token: str
    plain_session: str
    stream_session: str
    roundtable_session: str | None


def capacity_clients(count: int, roundtables: int) -> list[CapacityClient]:
    """One user per client: no per-user limit answers before the server's capacity does."""
    clients = []
    for i in range(count):
        user, token = _user_make()
        room = _room_make(user, f"Bench capacity {i}", (WRITER,))
        roundtable = _room_make(user, f"Bench capacity {i} rt", ROUNDTABLE) if i < roundtables else None
        clients.append(
            CapacityClient(
                token=token,
                plain_session=str(session_create(room=room, title="plain").pk),
                stream_session=str(session_create(room=room, title="stream").pk),
                roundtable_session=str(session_create(room=roundtable, title="rt").pk)
                if roundtable
                else None,
            )
        )
    return clients


def database_settle() -> None:
    """VACUUM ANALYZE the database once the fixtures are written: a long-lived database is kept so by
    autovacuum, while tables just bulk-loaded have neither statistics nor visibility map. A session of
    1,000 turns loaded a moment ago would otherwise measure PostgreSQL visiting every fresh row (≈ 4 ms
    more per turn on the first run against a new bench database), not what such a session costs."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
