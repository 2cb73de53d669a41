"""The work gate (pantheon/work_gate.py): how many turns of a process work at once, with real threads
(greenlets under gevent behave the same: gunicorn's worker patches ``threading``), and the turn views
entering and leaving it whatever their outcome."""

import threading
import time

import pytest

from orchestration import capacity
from orchestration.errors import ServerBusy
from pantheon.work_gate import WorkGate, work_gate, work_gate_reset, work_gate_size


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_at_most_size_members_work_at_once_and_the_rest_queue():
    gate = WorkGate(2)
    inside, most, lock, release = [0], [0], threading.Lock(), threading.Event()

    def member():
        with gate.membership():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=member) for _ in range(5)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: inside[0] == 2 and gate.waiting == 3)
    time.sleep(0.05)
    assert inside[0] == 2 and gate.waiting == 3  # nobody else got in meanwhile
    release.set()
    for thread in threads:
        thread.join(5)
    assert most[0] == 2 and gate.waiting == 0
    assert all(gate._semaphore.acquire(blocking=False) for _ in range(2))  # every place given back


def test_a_member_leaves_while_it_waits_and_enters_again_after():
    gate = WorkGate(1)
    waiting_on_model, model_answers, other_got_in = threading.Event(), threading.Event(), threading.Event()

    def turn():
        with gate.membership():
            with gate.outside():
                waiting_on_model.set()
                model_answers.wait(5)
            assert gate.held

    def other():
        with gate.membership():
            other_got_in.set()

    first = threading.Thread(target=turn)
    first.start()
    assert waiting_on_model.wait(5)
    second = threading.Thread(target=other)
    second.start()
    assert other_got_in.wait(5), "the gate was kept through the model's wait"
    second.join(5)
    model_answers.set()
    first.join(5)
    assert not first.is_alive()


def test_a_non_member_passes_a_wait_untouched():
    gate = WorkGate(1)
    with gate.outside():
        assert not gate.held and not gate.member
    assert not gate.held and gate.waiting == 0
    assert gate._semaphore.acquire(blocking=False)


def test_a_member_not_yet_entered_enters_when_its_first_wait_ends():
    """A streamed turn's own thread: the request handed its place on, the turn enters at its first
    model call's end (to commit) and leaves at its end."""
    gate = WorkGate(1)
    with gate.membership(entered=False):
        assert not gate.held
        with gate.outside():
            assert not gate.held
        assert gate.held
        assert not gate._semaphore.acquire(blocking=False)
    assert not gate.held and gate._semaphore.acquire(blocking=False)


def test_leaving_twice_gives_the_place_back_once():
    gate = WorkGate(1)
    gate.enter()
    gate.leave()
    gate.leave()
    gate.quit()
    assert gate._semaphore.acquire(blocking=False)
    with pytest.raises(ValueError):  # bounded: a second release would have raised
        gate._semaphore.release()
        gate._semaphore.release()


def test_the_size_follows_the_pool(settings):
    settings.DATABASE_POOL_MAX_SIZE = 8
    settings.TURN_WORK_CONCURRENCY = None
    assert work_gate_size() == 6
    settings.DATABASE_POOL_MAX_SIZE = 2
    assert work_gate_size() == 1
    settings.TURN_WORK_CONCURRENCY = 3
    assert work_gate_size() == 3
    settings.TURN_WORK_CONCURRENCY = 0
    assert work_gate_size() == 0
    settings.DATABASE_POOL_MAX_SIZE = 0
    settings.TURN_WORK_CONCURRENCY = 5
    assert work_gate_size() == 0  # no pool: the thread-bound server, no gate


def test_with_the_gate_off_every_member_passes(settings):
    settings.DATABASE_POOL_MAX_SIZE = 0
    work_gate_reset()
    try:
        gate = work_gate()
        gate.enter()
        other = threading.Thread(target=lambda: gate.enter() or gate.quit())
        other.start()
        other.join(2)
        assert not other.is_alive()
        gate.quit()
    finally:
        work_gate_reset()


def test_turns_queued_at_the_gate_count_toward_the_process_cap(settings):
    settings.TURNS_IN_FLIGHT_PER_PROCESS = 3
    capacity.process_busy_check(queued=2)
    with pytest.raises(ServerBusy):
        capacity.process_busy_check(queued=3)
    settings.TURNS_IN_FLIGHT_PER_PROCESS = 0
    capacity.process_busy_check(queued=10_000)  # no cap


@pytest.fixture
def gate_on(settings):
    """The gate as under gevent (a pool of 8: six places), whatever the test settings' pool."""
    settings.DATABASE_POOL_MAX_SIZE = 8
    settings.TURN_WORK_CONCURRENCY = None
    work_gate_reset()
    yield work_gate()
    work_gate_reset()


def _places_free(gate: WorkGate) -> int:
    free = 0
    while gate._semaphore.acquire(blocking=False):
        free += 1
    for _ in range(free):
        gate._semaphore.release()
    return free


@pytest.mark.django_db
@pytest.mark.room(("writer", "deepseek"))
def test_turn_requests_give_their_place_back_whatever_their_outcome(gate_on, turn_post, fake_llm, session):
    """A turn, a refusal before the view (401), one in the view (400, 422), a replay and a stream: each
    leaves the gate as it found it, and no thread is left a member."""
    from rest_framework.test import APIClient

    assert turn_post("@writer hi", HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
    assert turn_post("@writer hi", HTTP_IDEMPOTENCY_KEY="k1").status_code == 200  # replay
    assert turn_post("", mode="manual").status_code == 400
    assert turn_post("no tag at all").status_code == 422
    anonymous = APIClient().post(f"/api/v1/sessions/{session.pk}/turns", {"user_input": "@writer hi"})
    assert anonymous.status_code == 401
    streamed = turn_post("@writer again", HTTP_ACCEPT="text/event-stream")
    assert streamed.status_code == 201
    b"".join(streamed.streaming_content)
    assert _places_free(gate_on) == gate_on.size
    assert not gate_on.member and not gate_on.held and gate_on.waiting == 0
