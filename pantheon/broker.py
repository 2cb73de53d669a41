"""The health check's question to the Celery broker, on a connection this process keeps.

Connecting anew for every check (kombu: a TCP connection, a channel, ``PING``, then closing) cost a
load balancer's each probe several waits; while a burst of turns keeps a gevent worker's hub busy,
each wait is a turn of the whole run queue, and the probe took seconds. Kept, a check is one
``PING`` on a live socket (Redis, the broker compose and the runbook configure) or, on another
transport, kombu's own ``ensure_connection``. A check that fails drops the connection: the next one
connects again, so a broker that comes back is seen at once.
"""

import contextlib
import threading

_lock = threading.Lock()  # kombu's connections are not shared between threads
_kept = None  # (the broker URL it was made for, the kombu connection), or None


def broker_ping(*, timeout: float = 2.0) -> None:
    """Ask the broker of the Celery app one question, one attempt (no retry back-off); raises when
    it does not answer."""
    from pantheon.celery import app

    global _kept

    url = app.conf.broker_url
    with _lock:
        if _kept is None or _kept[0] != url:
            _drop()
            _kept = (url, app.connection_for_write())
        connection = _kept[1]
        try:
            connection.ensure_connection(max_retries=0, timeout=timeout)
            client = getattr(connection.default_channel, "client", None)
            if client is not None and callable(getattr(client, "ping", None)):
                client.ping()
        except Exception:
            _drop()
            raise


def _drop() -> None:
    global _kept

    if _kept is not None:
        with contextlib.suppress(Exception):  # a connection already broken has nothing left to close
            _kept[1].release()
    _kept = None
