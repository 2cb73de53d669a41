from django.utils import timezone

from rooms.models import Room
from sessions_app.models import ChatSession


def session_create(*, room: Room, title: str = "", transcript_fingerprint: str = "") -> ChatSession:
    """``transcript_fingerprint``: the conversation an OpenAI-compatible client sent before (see
    ``openai_compat``), so its next request finds this session."""
    return ChatSession.objects.create(room=room, title=title, transcript_fingerprint=transcript_fingerprint)


def session_delete(*, session: ChatSession) -> None:
    """Soft delete: the session and its turns answer 404 from now on."""
    ChatSession.objects.filter(pk=session.pk).update(deleted_at=timezone.now())
