"""The database connection a request or a task holds, given back while it waits on something slow.

With the connection pool (``DATABASE_POOL_MAX_SIZE``, Django's ``OPTIONS["pool"]``), a process shares a
few connections among all its turns — greenlets under gunicorn's gevent worker, the summaries of the
gevent Celery pool. A turn or summary must not keep one through a model call (2–60 s): it gives it back
to the pool before every provider call (``orchestration.services.calls``) and takes one again for its
next statement. Inside a transaction nothing is given back (the transaction needs its connection).
Without a pool (``DATABASE_POOL_MAX_SIZE=0``) nothing is done: a persistent connection would only be
reopened at the next statement.
"""

from django.db import connections


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
