"""How many turns of one web process do their CPU work at once (``TURN_WORK_CONCURRENCY``).

Under gunicorn's gevent worker every request is a greenlet on one event loop. When hundreds of turns
arrive together, hundreds of greenlets are ready to run at once; each runs until its next wait
(a statement, a Redis call), and any other request — ``/health``, a list — waits behind all of them
at every one of its own waits: seconds, with the CPU fully used. The gate keeps that queue short: a
turn request enters it before its authentication, leaves it while it waits on a model (its
database connection is given back then too) and enters it again to commit. The turns past the gate
wait on it, not in the event loop's queue, so everything else is served between a few turns' work.
The machine does the same work in the same order; only who waits where changes.

Nothing else is gated, and a greenlet that is not a member (a summary task, a management command)
passes through every call untouched. With no connection pool (the thread-bound server) the gate is
off: threads are few there, and the operating system shares the CPU between them.
"""

import contextlib
import threading
from collections.abc import Iterator

from django.conf import settings


class WorkGate:
    """A semaphore entered by member greenlets (or threads) for their CPU work and left while they
    wait; ``waiting`` counts those queued for it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._semaphore = threading.BoundedSemaphore(size)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.waiting = 0

    def _acquire(self) -> None:
        with self._lock:
            self.waiting += 1
        try:
            self._semaphore.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        self._local.held = True

    def _release(self) -> None:
        self._local.held = False
        self._semaphore.release()

    @property
    def held(self) -> bool:
        return getattr(self._local, "held", False)

    @property
    def member(self) -> bool:
        return getattr(self._local, "member", False)

    def enter(self) -> None:
        """This greenlet's work goes through the gate from now on; blocks until there is room."""
        self._local.member = True
        if not self.held:
            self._acquire()

    def leave(self) -> None:
        """The gate left (its work handed to another greenlet, or done); still a member."""
        if self.held:
            self._release()

    def quit(self) -> None:
        """No longer a member: the gate left if held."""
        self.leave()
        self._local.member = False

    @contextlib.contextmanager
    def membership(self, *, entered: bool = True) -> Iterator[None]:
        """Member for the block (``entered=False``: a member that enters at its first wait's end)."""
        if entered:
            self.enter()
        else:
            self._local.member = True
        try:
            yield
        finally:
            self.quit()

    @contextlib.contextmanager
    def outside(self) -> Iterator[None]:
        """A wait (a model call, a pause): a member leaves the gate for the block and enters again after
        it. A non-member is not touched."""
        if not self.member:
            yield
            return
        self.leave()
        try:
            yield
        finally:
            self._acquire()


class _Open(WorkGate):
    """The gate when it is off: every member passes at once."""

    def __init__(self) -> None:
        super().__init__(1)

    def _acquire(self) -> None:
        self._local.held = True

    def _release(self) -> None:
        self._local.held = False


_gate: WorkGate | None = None
_gate_lock = threading.Lock()


def work_gate_size() -> int:
    """``TURN_WORK_CONCURRENCY``, or (unset) two fewer than the pool's connections, at least 1: the
    turns in the gate each hold a pooled connection, and two stay free for everything else. 0 without
    a pool."""
    if not settings.DATABASE_POOL_MAX_SIZE:
        return 0
    if settings.TURN_WORK_CONCURRENCY is not None:
        return max(settings.TURN_WORK_CONCURRENCY, 0)
    return max(settings.DATABASE_POOL_MAX_SIZE - 2, 1)


def work_gate() -> WorkGate:
    """This process's gate, sized from the settings at its first use."""
    global _gate
    if _gate is None:
        with _gate_lock:
            if _gate is None:
                size = work_gate_size()
                _gate = WorkGate(size) if size else _Open()
    return _gate


def work_gate_reset() -> None:
    """Forget the gate (tests that change its settings); the next use builds it again."""
    global _gate
    _gate = None
