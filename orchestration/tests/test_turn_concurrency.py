"""Simultaneous turns on one session, with real threads and transactions on the test database."""

import threading
import time

import pytest
from django.db import connections
from rest_framework.test import APIClient

from pantheon import limits
from sessions_app.models import ChatSession, Turn
from usage.models import LlmCallEvent
from usage.services.tokens import api_token_issue

# serialized_rollback: the flush after a transactional test must not lose the seeded catalog.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def run_simultaneously(count: int, session, token: str, text: str = "@writer hello", headers=None) -> list:
    barrier = threading.Barrier(count)
    responses: list = [None] * count

    def worker(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait()
            body = {"user_input": text if headers else f"{text} {i}", "mode": "manual"}
            responses[i] = client.post(
                f"/api/v1/sessions/{session.pk}/turns", body, format="json", **(headers or {})
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return responses


def test_ten_simultaneous_turns_get_indexes_one_to_ten(user, session, fake_llm, settings):
    settings.TURNS_IN_FLIGHT_PER_USER = 10  # this test is about sequencing, not the in-flight cap
    fake_llm.set_latency(20)
    token = api_token_issue(user=user)[1]
    responses = run_simultaneously(10, session, token)

    statuses = [r.status_code for r in responses]
    assert all(s in (201, 409) for s in statuses), statuses
    created = [r.json() for r in responses if r.status_code == 201]
    assert sorted(t["turn_index"] for t in created) == list(range(1, len(created) + 1))
    assert len(created) == 10  # the sequence timeout (20 s) comfortably covers ten 20 ms turns
    indexes = list(
        Turn.objects.filter(session=session).order_by("turn_index").values_list("turn_index", flat=True)
    )
    assert indexes == list(range(1, 11))
    assert LlmCallEvent.objects.filter(session_id=session.pk, purpose="agent_reply").count() == 10
    assert LlmCallEvent.objects.filter(session_id=session.pk).count() == len(fake_llm.requests)
    assert ChatSession.objects.get(pk=session.pk).claim_token is None
    # Each turn saw the ones committed before it: turn n's request carried n-1 earlier exchanges.
    replies = [r for r in fake_llm.requests if "response_format" not in r.body]
    assert sorted(len(r.messages) for r in replies)[-1] > sorted(len(r.messages) for r in replies)[0]


def test_turn_that_cannot_be_sequenced_in_time_is_409_with_retry_after(user, session, fake_llm, settings):
    settings.TURN_CLAIM_WAIT_SECONDS = 0.3
    fake_llm.set_latency(800)
    token = api_token_issue(user=user)[1]
    responses = run_simultaneously(3, session, token)

    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 201 and 409 in statuses and all(s in (201, 409) for s in statuses)
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json() == {
        "detail": "Turn creation conflicted with concurrent writes. Please retry.",
        "code": "turn_conflict",
    }
    assert int(conflict["Retry-After"]) >= 1
    assert Turn.objects.filter(session=session).count() == statuses.count(201)
    assert LlmCallEvent.objects.filter(session_id=session.pk).count() == len(fake_llm.requests)


def test_expired_claim_is_taken_over(user, session, fake_llm):
    from datetime import timedelta

    from django.utils import timezone

    ChatSession.objects.filter(pk=session.pk).update(
        claim_token="00000000-0000-0000-0000-000000000001",
        claim_expires_at=timezone.now() - timedelta(seconds=1),
    )
    token = api_token_issue(user=user)[1]
    [response] = run_simultaneously(1, session, token)
    assert response.status_code == 201, response.json()["errors"]
    assert response.json()["turn_index"] == 1


def test_simultaneous_requests_with_one_idempotency_key_run_the_turn_once(user, session, fake_llm):
    """The twins wait for the session; the first commits, the others find its key once they hold
    the claim and replay it: one call, one turn."""
    fake_llm.set_latency(100)
    token = api_token_issue(user=user)[1]
    responses = run_simultaneously(3, session, token, headers={"HTTP_IDEMPOTENCY_KEY": "same-key"})
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    assert Turn.objects.filter(session=session).count() == 1
    assert len(fake_llm.requests) == 1
    assert LlmCallEvent.objects.filter(session_id=session.pk).count() == 1


def test_a_twin_with_other_text_is_refused_and_gives_its_in_flight_slot_back_once(
    user, session, fake_llm, settings
):
    """The second request waits for the session, then finds the key committed for other text: 422,
    and its in-flight slot is returned exactly once — the user's other turn keeps its own."""
    settings.TURNS_IN_FLIGHT_PER_USER = 3
    fake_llm.set_latency(300)
    key = f"turns-in-flight:{user.pk}"
    assert limits.slot_acquire(key, limit=3, ttl_seconds=60)  # another turn of this user, running
    token = api_token_issue(user=user)[1]
    responses: dict[str, object] = {}

    def post(name: str, text: str, delay: float) -> None:
        time.sleep(delay)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            responses[name] = client.post(
                f"/api/v1/sessions/{session.pk}/turns",
                {"user_input": text, "mode": "manual"},
                format="json",
                HTTP_IDEMPOTENCY_KEY="same-key",
            )
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=post, args=("first", "@writer hello", 0)),
        threading.Thread(target=post, args=("second", "@writer something else", 0.1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert responses["first"].status_code == 201
    assert responses["second"].status_code == 422
    assert responses["second"].json()["code"] == "idempotency_key_reused"
    # Both requests gave their slot back, and only theirs: two more fit beside the running turn.
    assert limits.slot_acquire(key, limit=3, ttl_seconds=60)
    assert limits.slot_acquire(key, limit=3, ttl_seconds=60)
    assert not limits.slot_acquire(key, limit=3, ttl_seconds=60)
