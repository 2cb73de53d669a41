"""Streaming a turn to an HTTP client: the turn runs in a thread of its own (a greenlet under
gunicorn's gevent worker, which patches ``threading`` and ``queue``), the response reads its events
from a queue (docs/streaming.md, "Serving").

Why a thread: a response blocked in a provider's read could not send the keep-alive comments that stop
proxies from closing an idle stream. Here the response thread waits on the queue with a timeout and
writes a comment whenever ``TURN_STREAM_KEEPALIVE_SECONDS`` pass in silence, while the turn thread
reads the provider. No transaction or lock is held by either while waiting.

When the client goes away, the server closes the response: the turn is told (``cancelled``), reads the
agent in progress to its end — its tokens are paid for — calls no further agent and commits as
``partial``. The turn thread always finishes its commit, whoever is still listening.

A revoked credential stops a stream the same way: at each agent's end the stream asks the request's
token or API key (``still_valid()``, one indexed lookup) whether it still holds; once it does not,
no further agent is called (``credential_revoked``).
"""

import contextlib
import contextvars
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection

from orchestration.turns import TurnProgress, turn_run
from pantheon.api.timing import request_timing_current
from pantheon.db_connections import connection_release
from pantheon.errors import ApplicationError, ServiceUnavailable
from pantheon.work_gate import work_gate

logger = logging.getLogger(__name__)


class StreamFailed(ServiceUnavailable):
    code = "server_error"
    default_message = "The turn failed on the server; what it committed, if anything, is in the session."


AGENT_ENDS = ("agent.completed", "agent.failed")  # the boundaries where a revoked credential stops a turn
KEEPALIVE = object()  # yielded by ``TurnStream`` after a silence; the formatter writes a comment
_END = object()


class TurnStream:
    """A prepared turn, run in its own thread, its events handed over through a queue.

    Iterate it for ``(name, data)`` pairs (and ``KEEPALIVE``): the turn's own events
    (``turn.started``, ``agent.*``), then ``("turn.completed", TurnOutcome)`` or
    ``("error", ApplicationError)``. ``close()`` — the server calls it when the client is gone —
    cancels the turn if it has not finished.
    """

    def __init__(
        self, progress: TurnProgress, *, keepalive_seconds: float | None = None, credential: Any = None
    ) -> None:
        self.progress = progress
        # The request's token or API key: asked at each agent's end whether it still holds.
        self.credential_valid: Callable[[], bool] | None = getattr(credential, "still_valid", None)
        self.keepalive_seconds = keepalive_seconds or settings.TURN_STREAM_KEEPALIVE_SECONDS
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._finished = False
        self.timing = request_timing_current()

    def start(self) -> "TurnStream":
        context = contextvars.copy_context()  # request id, user, timing: the turn's log lines keep them
        thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"turn-{self.progress.turn_id}", daemon=True
        )
        thread.start()
        # The request's own connection goes back to the pool, and its place in the work gate to the
        # others: the response only relays the events until the stream ends (with no pool, nothing
        # is done).
        connection_release()
        work_gate().leave()
        return self

    def _put(self, name: str, data: Any) -> None:
        self._queue.put((name, data))
        if name in AGENT_ENDS and self._credential_revoked():
            logger.info("the stream's credential was revoked; the turn calls no further agent")
            self.progress.cancel_code = "credential_revoked"
            self.progress.cancelled.set()

    def _credential_revoked(self) -> bool:
        check = self.credential_valid
        return check is not None and not self.progress.cancelled.is_set() and not check()

    def _run(self) -> None:
        try:
            timing = self.timing.counting() if self.timing is not None else contextlib.nullcontext()
            # A member of the work gate that enters it when its first model call returns.
            with timing, work_gate().membership(entered=False):
                outcome = turn_run(self.progress, on_event=self._put)
            self._put("turn.completed", outcome)
        except ApplicationError as exc:
            self._put("error", exc)
        except Exception:
            logger.exception("streamed turn failed")
            self._put("error", StreamFailed())
        finally:
            self._queue.put(_END)
            connection.close()  # this thread's own connection

    def __iter__(self) -> Iterator[tuple[str, Any] | object]:
        while True:
            try:
                item = self._queue.get(timeout=self.keepalive_seconds)
            except queue.Empty:
                yield KEEPALIVE
                continue
            if item is _END:
                self._finished = True
                return
            yield item

    def close(self) -> None:
        if not self._finished:
            logger.info("client left during the stream; the turn finishes its agent and commits as partial")
            self.progress.cancelled.set()


class EncodedStream:
    """The bytes of a ``TurnStream`` for one wire format; closing it cancels the turn if unfinished.

    ``encode(name, data)`` turns each event into bytes (or None to skip it); ``keepalive`` is what a
    silence sends.
    """

    def __init__(
        self,
        stream: TurnStream,
        encode: Callable[[str, Any], bytes | None],
        *,
        keepalive: bytes = b": keep-alive\n\n",
        head: bytes = b"",
    ) -> None:
        self.stream, self.encode, self.keepalive, self.head = stream, encode, keepalive, head

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        for item in self.stream:
            if item is KEEPALIVE:
                yield self.keepalive
                continue
            name, data = item
            encoded = self.encode(name, data)
            if encoded:
                yield encoded

    def close(self) -> None:
        self.stream.close()


def sse_event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()
