"""Cuts a streamed response whose next chunk is late.

A blocked socket read cannot be interrupted from the thread doing it, and httpx's read timeout is
one figure for every read of a response, so neither can bound "the first chunk within F seconds of
the request, then never more than I seconds between chunks" while a provider trickles keep-alive
comments. One daemon thread per process watches every open stream's deadline and, when one passes,
shuts the stream's socket down: the blocked read returns at once and the reader sees ``fired``.

The reader pauses its watch while it handles a chunk (the time a slow consumer takes is not the
provider's silence) and stops it before the connection goes back to the pool, so a socket is never
shut down once another request may be using it.
"""

import contextlib
import math
import os
import socket
import threading
import time


class Watch:
    """One stream's deadline. Every method is safe against the watchdog thread firing meanwhile."""

    def __init__(self, watchdog: "Watchdog", sock: socket.socket | None, deadline: float) -> None:
        self._watchdog = watchdog
        self._sock = sock
        self.deadline = deadline
        self.fired = False

    def arm(self, deadline: float) -> None:
        """Cut the stream unless a chunk arrives by ``deadline`` (``time.monotonic()``)."""
        with self._watchdog.condition:
            earlier = deadline < self.deadline
            self.deadline = deadline
            if earlier:
                self._watchdog.condition.notify()

    def pause(self) -> None:
        with self._watchdog.condition:
            self.deadline = math.inf

    def stop(self) -> None:
        """No cut from now on (idempotent)."""
        with self._watchdog.condition:
            self._watchdog.watches.discard(self)

    def cut(self) -> None:
        # The socket is shut down, not closed: closing it under the reader's feet could hand its
        # number to another connection. The raw ``shutdown`` also leaves an SSL object untouched.
        self.fired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


class Watchdog:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.condition = threading.Condition()
        self.watches: set[Watch] = set()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def watch(self, sock: socket.socket | None, deadline: float) -> Watch:
        """Start watching ``sock``: cut unless a chunk arrives by ``deadline``."""
        if self._pid != os.getpid():  # a forked worker: the parent's thread did not come along
            self._reset()
        watch = Watch(self, sock, deadline)
        with self.condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llm-stream-watchdog", daemon=True)
                self._thread.start()
            self.watches.add(watch)
            self.condition.notify()
        return watch

    def _run(self) -> None:
        with self.condition:
            while True:
                now = time.monotonic()
                for late in [w for w in self.watches if w.deadline <= now]:
                    self.watches.discard(late)
                    late.cut()
                pending = [w.deadline for w in self.watches if w.deadline != math.inf]
                self.condition.wait(min(pending) - now if pending else None)


watchdog = Watchdog()
