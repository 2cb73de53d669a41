"""The database connection a request or a task holds, given back while it waits on something slow.

With the connection pool (``DATABASE_POOL_MAX_SIZE``, Django's ``OPTIONS["pool"]``), a process shares a
few connections among all its turns — greenlets under gunicorn's gevent worker, the summaries of the
gevent Celery pool. A turn or summary must not keep one through a model call (2–60 s): it gives it back
to the pool before every provider call (``orchestration.services.calls``) and takes one again for its
next statement. Inside a transaction nothing is given back (the transaction needs its connection).
Without a pool (``DATABASE_POOL_MAX_SIZE=0``) nothing is done: a persistent connection would only be
reopened at the next statement.
"""

import contextlib
import select
import threading
import time

from django.db import connections
from psycopg import pq, sql
from psycopg_pool import ConnectionPool

from pantheon.sockets import fd_signals

_SIGNS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def connection_release(alias: str = "default") -> bool:
    """Give the connection back to the pool if one is held and no transaction is open; returns
    whether it did."""
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block:
        return False
    if not connection.settings_dict.get("OPTIONS", {}).get("pool"):
        return False
    connection.close()
    return True


def pooled_check(conn) -> None:
    """The pool's check of a connection it hands out (``pantheon.postgresql``), without a round trip.
    A connection idle in the pool has nothing to read: the server writes to it unasked only when it
    ends the session (a restart, ``pg_terminate_backend``, ``idle_session_timeout``: an error, then the
    socket closes). So only a connection with something to read, a closed socket or a bad state is
    asked (psycopg_pool's empty query); when that fails the pool drops it and hands out another.
    A connection cut without a word (a network gone quiet) passes, as it would pass nothing better:
    its first statement fails."""
    if conn.pgconn.status != pq.ConnStatus.OK or _socket_signals(conn.pgconn.socket):
        ConnectionPool.check_connection(conn)


def _socket_signals(fd: int) -> bool:
    return fd_signals(fd, _SIGNS)


def catalog_warm(conn) -> None:
    """Plan (never run) one statement naming every table of the project, so this connection's
    backend loads their catalog entries and their indexes' now. Errors are ignored: a cold cache
    only costs time."""
    from django.apps import apps

    tables = sorted({m._meta.db_table for m in apps.get_models() if m._meta.managed and not m._meta.proxy})
    if not tables:
        return
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("(SELECT NULL FROM {} LIMIT 1)").format(sql.Identifier(table)) for table in tables
    )
    with contextlib.suppress(Exception):
        conn.execute(sql.SQL("EXPLAIN ") + union)


def pool_warm(*, alias: str = "default", timeout: float = 2.0) -> bool:
    """Open this process's pool and wait (up to ``timeout`` s) for its first connection, so the first
    request does not pay for it; returns whether one came. Called once per worker after it
    has forked (``pantheon/wsgi.py``), never in a parent that forks: connections do not survive a fork.
    A database that does not answer leaves the pool opening in the background."""
    connection = connections[alias]
    if not connection.settings_dict.get("OPTIONS", {}).get("pool"):
        return False
    pool = connection.pool
    pool.open()  # starts the background connections; never waits (a wait that times out closes it)
    # Watched, not asked for: a getconn before the first connection is ready makes the pool open one
    # more, and a pool that grows past its first connections does not warm their catalog.
    deadline = time.monotonic() + timeout
    while not pool_ready(pool):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def pool_ready(pool) -> bool:
    """A connection of ``pool`` is ready to be handed out."""
    return pool.get_stats().get("pool_available", 0) > 0


_ping_lock = threading.Lock()
_ping_connection = None  # this process's connection for health checks, outside the pool


def database_ping(*, alias: str = "default", timeout: float = 2.0) -> None:
    """``SELECT 1`` on a connection of this process's own, kept apart from the pool: a health check
    must not queue behind the turns waiting for a pooled connection, nor wait out the pool's timeout
    when the database is down. Raises when the database does not answer within about ``timeout``
    seconds (to connect, then to run the query). A kept connection that fails (the server closed it
    while it was idle, a restart) is replaced by a new one once before the database counts as down.
    One more database connection per process, used by nothing else."""
    global _ping_connection

    with _ping_lock:
        kept = _ping_connection
        if kept is not None and not kept.closed:
            try:
                kept.execute("SELECT 1")
                return
            except Exception:
                kept.close()
        _ping_connection = None
        fresh = _ping_connect(connections[alias], timeout=timeout)
        try:
            fresh.execute("SELECT 1")
        except Exception:
            fresh.close()
            raise
        _ping_connection = fresh


# What a check found is kept this long (per connection alias): an outage, or a pool that stays busy,
# costs the requests that meet it one connection attempt a second between them, not one each.
VERDICT_KEPT_SECONDS = 1.0
_answers_lock = threading.Lock()
_verdicts: dict[str, tuple[float, bool]] = {}  # alias: (kept until, answered)


def database_answers_check(wrapper, *, timeout: float = 2.0) -> None:
    """Raise (psycopg's ``OperationalError``) unless the database of ``wrapper`` (a Django connection)
    accepts a new connection within about ``timeout`` seconds. For a request that found no pooled
    connection free: a pool that is only busy is worth waiting for, a database that is down is not
    (``pantheon.postgresql``)."""
    import psycopg

    with _answers_lock:
        until, answered = _verdicts.get(wrapper.alias, (0.0, True))
        if time.monotonic() < until:
            if not answered:
                raise psycopg.OperationalError("the database did not answer a moment ago")
            return
        try:
            _ping_connect(wrapper, timeout=timeout).close()
        except Exception:
            _verdicts[wrapper.alias] = (time.monotonic() + VERDICT_KEPT_SECONDS, False)
            raise
        _verdicts[wrapper.alias] = (time.monotonic() + VERDICT_KEPT_SECONDS, True)


def _ping_connect(wrapper, *, timeout: float):
    import psycopg

    params = wrapper.get_connection_params()
    for django_only in ("pool", "cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params["connect_timeout"] = max(int(timeout), 1)
    limit = f"-c statement_timeout={int(timeout * 1000)}"
    params["options"] = f"{params.get('options', '')} {limit}".strip()
    return psycopg.connect(autocommit=True, **params)
