import factory

from rooms.tests.factories import RoomFactory
from sessions_app.models import ChatSession


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatSession

    room = factory.SubFactory(RoomFactory)
    title = factory.Sequence(lambda n: f"Session {n}")
