import uuid

from django.utils import timezone

from pantheon.api.exceptions import NotFound
from rooms.models import Room
from sessions_app.models import ChatSession


def session_create(*, user, room_id: uuid.UUID, title: str = "") -> ChatSession:
    room = Room.objects.live().filter(owner=user, pk=room_id).first()
    if room is None:
        raise NotFound()
    return ChatSession.objects.create(room=room, title=title)


def session_delete(*, session: ChatSession) -> None:
    """Soft delete: the session and its turns answer 404 from now on."""
    ChatSession.objects.filter(pk=session.pk).update(deleted_at=timezone.now())
