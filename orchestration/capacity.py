"""The turns one web process runs at once, capped (``TURNS_IN_FLIGHT_PER_PROCESS``).

Past the cap a new turn is refused at once with ``ServerBusy`` (503 ``server_busy``, ``Retry-After``),
before its session claim, hold or in-flight slot is taken: overload is an answer in milliseconds, never
minutes in a queue. A turn holds its place from its preparation to the end of its run (a streamed
turn's run ends in its own greenlet or thread). Per process, on purpose: the cap sizes what one
process can hold (its memory, its share of the CPU); the per-user limit is the one shared across
processes (Redis).
"""

import threading

from django.conf import settings

from orchestration.errors import ServerBusy

_lock = threading.Lock()
_in_flight = 0


def process_slot_take() -> None:
    """Take a place among this process's turns, or raise ``ServerBusy``."""
    global _in_flight
    cap = settings.TURNS_IN_FLIGHT_PER_PROCESS
    with _lock:
        if cap and _in_flight >= cap:
            raise ServerBusy()
        _in_flight += 1


def process_slot_give_back() -> None:
    global _in_flight
    with _lock:
        _in_flight = max(_in_flight - 1, 0)


def process_turns_in_flight() -> int:
    return _in_flight


def process_full(*, queued: int = 0) -> bool:
    """Whether this process's turns — running, plus ``queued`` for their turn to work
    (``pantheon.work_gate``) — already fill the cap."""
    cap = settings.TURNS_IN_FLIGHT_PER_PROCESS
    return bool(cap) and _in_flight + queued >= cap


def process_busy_check(*, queued: int = 0) -> None:
    """Refuse a turn at once (``ServerBusy``) when the process is full; takes nothing."""
    if process_full(queued=queued):
        raise ServerBusy()
