import pytest

from rooms.tests.factories import AgentFactory, RoomFactory
from sessions_app.tests.factories import SessionFactory


@pytest.fixture
def session(user):
    """A session of the user's room with two agents on two models."""
    room = RoomFactory(owner=user)
    AgentFactory(room=room, agent_key="writer", name="Writer", model_alias="deepseek", position=0)
    AgentFactory(room=room, agent_key="critic", name="Critic", model_alias="gpt-4o-mini", position=1)
    return SessionFactory(room=room)
