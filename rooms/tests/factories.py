import factory

from rooms.models import Agent, Room
from usage.tests.factories import UserFactory


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Room

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Room {n}")
    description = "A room for testing."


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    room = factory.SubFactory(RoomFactory)
    agent_key = factory.Sequence(lambda n: f"agent{n}")
    name = factory.LazyAttribute(lambda a: a.agent_key.capitalize())
    model_alias = "deepseek"
    role_prompt = "You help."
    position = factory.Sequence(lambda n: n)
