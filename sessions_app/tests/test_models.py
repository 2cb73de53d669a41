"""What deleting a turn keeps: its messages stay (their turn set to null), its audits go with it."""

import pytest

from sessions_app.models import Message, TurnContextAudit
from sessions_app.tests.factories import MessageFactory, TurnContextAuditFactory, TurnFactory

pytestmark = pytest.mark.django_db


def test_a_deleted_turn_leaves_its_messages_and_takes_its_audits():
    turn = TurnFactory()
    message = MessageFactory(turn=turn)
    TurnContextAuditFactory(turn=turn)
    rejected = TurnContextAuditFactory(turn=None, session=turn.session, rejected=True)  # a refused input
    turn.delete()
    message.refresh_from_db()
    assert message.turn is None and message.session_id == turn.session_id
    assert list(TurnContextAudit.objects.values_list("pk", flat=True)) == [rejected.pk]
    assert Message.objects.count() == 1
