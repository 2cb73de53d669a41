"""The provider client's pool asks whether an idle connection was closed by the server with the
interpreter's ``poll``, not gevent's.

httpcore (under the ``openai`` client's httpx) looks at every idle connection of its pool each time a
request starts or a response is closed: a readable idle socket means the server hung up. It asks with
``select.poll`` and a zero timeout, which never waits; but under a gevent worker ``select.poll`` is
gevent's, which registers a watcher per socket and goes through the event loop to answer. With
hundreds of turns whose calls end within the same second, each of the hundreds of closes polled up to
the pool's hundred idle connections that way: 14 % of the workers' CPU samples through a burst
(docs/performance.md, "The provider pool's idle check"). The interpreter's ``poll`` answers the same
question with one system call and no switch.

Installed once, when the provider module is imported (``install``): the check is the one function
httpcore's synchronous network stream calls for ``is_readable``; a test fails if it is not ours.
"""

import select
import socket

import httpcore2._backends.sync as httpcore_sync

from pantheon.sockets import fd_signals


def socket_readable(sock: socket.socket | None) -> bool:
    """Whether reading ``sock`` would return at once (data, or the end a closed peer leaves): a socket
    gone (``None``, or no descriptor) counts as readable, as httpcore's own check says."""
    fd = None if sock is None else sock.fileno()
    if fd is None or fd < 0:
        return True
    return fd_signals(fd, select.POLLIN)


def install() -> None:
    httpcore_sync.is_socket_readable = socket_readable
