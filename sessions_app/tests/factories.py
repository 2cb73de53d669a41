"""Factories of sessions, turns and what a turn leaves behind (messages, context audits, summaries).

Turns are numbered as the turn engine numbers them: ``TurnFactory(session=s)`` takes the session's
next index and moves ``last_turn_index`` with it, so a session built here sequences new turns
correctly. ``context_tokens`` is computed as the engine caches it.
"""

import factory

from orchestration.context import turn_context_tokens
from rooms.tests.factories import RoomFactory
from sessions_app.models import ChatSession, Message, SessionSummary, Turn, TurnContextAudit


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatSession

    room = factory.SubFactory(RoomFactory)
    title = factory.Sequence(lambda n: f"Session {n}")


class TurnFactory(factory.django.DjangoModelFactory):
    """A committed turn answered by the writer. ``TurnFactory(session=s, failed=True)`` for a turn
    whose every call failed (no reply, kept out of later context)."""

    class Meta:
        model = Turn

    session = factory.SubFactory(SessionFactory)
    turn_index = factory.LazyAttribute(lambda t: t.session.last_turn_index + 1)
    mode = Turn.Mode.MANUAL
    user_input = factory.LazyAttribute(lambda t: f"@writer part {t.turn_index}")
    assistant_output = factory.LazyAttribute(lambda t: f"Writer: reply {t.turn_index}")
    status = Turn.Status.COMPLETED
    responding_agent_keys = factory.LazyFunction(lambda: ["writer"])
    context_tokens = factory.LazyAttribute(
        lambda t: turn_context_tokens(user_input=t.user_input, assistant_output=t.assistant_output)
    )

    class Params:
        failed = factory.Trait(
            status=Turn.Status.FAILED,
            assistant_output="",
            responding_agent_keys=[],
            agent_errors=factory.LazyFunction(
                lambda: [{"agent_key": "writer", "code": "provider_unavailable"}]
            ),
        )

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        turn = super()._create(model_class, *args, **kwargs)
        session = turn.session
        if turn.turn_index > session.last_turn_index:
            ChatSession.objects.filter(pk=session.pk).update(last_turn_index=turn.turn_index)
            session.last_turn_index = turn.turn_index
        return turn


class MessageFactory(factory.django.DjangoModelFactory):
    """A message of a turn (the user's by default; ``role="assistant"`` with an agent for a reply)."""

    class Meta:
        model = Message

    turn = factory.SubFactory(TurnFactory)
    session = factory.LazyAttribute(lambda m: m.turn.session if m.turn else SessionFactory())
    role = Message.Role.USER
    mode = Turn.Mode.MANUAL
    content = factory.LazyAttribute(lambda m: m.turn.user_input if m.turn else "A message.")
    order = 0


class TurnContextAuditFactory(factory.django.DjangoModelFactory):
    """The budget figures of one agent call: a small context well inside the default 6,144 budget."""

    class Meta:
        model = TurnContextAudit

    turn = factory.SubFactory(TurnFactory)
    session = factory.LazyAttribute(lambda a: a.turn.session if a.turn else SessionFactory())
    agent_key = "writer"
    model_alias = "deepseek"
    context_window = 8192
    max_output_tokens = 2048
    budget_tokens = 6144
    tokens_before = 120
    tokens_after = 120


class SessionSummaryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SessionSummary

    session = factory.SubFactory(SessionFactory)
    covers_through_turn_index = 8
    summary_text = factory.LazyAttribute(
        lambda s: f"What happened through turn {s.covers_through_turn_index}."
    )
