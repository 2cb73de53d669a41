"""Whether a socket has something for us right now, asked with the interpreter's own ``poll``, never
gevent's: a question that never waits needs no event loop (gevent's ``poll`` starts a watcher and
switches to the hub to answer it). Used by the database pool's check of a connection it hands out
(``pantheon.db_connections``) and the provider client's check of an idle connection
(``orchestration.llm.idle_check``)."""

from gevent.monkey import get_original

_poll = get_original("select", "poll")


def fd_signals(fd: int, events: int) -> bool:
    """Whether any of ``events`` (``select.POLLIN`` …; an error or a hang-up always counts) holds
    for the descriptor ``fd`` now."""
    poller = _poll()
    poller.register(fd, events)
    return bool(poller.poll(0))
