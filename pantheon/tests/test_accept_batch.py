"""A gevent worker of the shipped configuration accepts the connections waiting for it in batches
(``WEB_ACCEPT_BATCH``, pantheon/serving.py), not one per turn of its event loop as gunicorn sets it
whenever there is more than one worker."""

import os
import subprocess
import sys
import textwrap

import pytest

from pantheon.testing.processes import ROOT

# Run in a gevent process of its own, as a worker is: gunicorn.conf.py's post_worker_init, then the
# server gunicorn's gevent worker builds (its module's StreamServer, max_accept set to 1 as gunicorn
# does with several workers), with ``WAITING`` connections queued at the listening socket before it
# starts. Prints how many connections the first accept callback took.
_WORKER = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()
    import runpy
    import socket
    import sys
    from types import SimpleNamespace

    import gevent
    from gunicorn.workers import ggevent

    conf = runpy.run_path(sys.argv[1])
    conf["post_worker_init"](SimpleNamespace(pid=0))
    waiting = int(sys.argv[2])

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(waiting)]

    server = ggevent.StreamServer(listener, handle=lambda sock, address: gevent.sleep(5))
    server.max_accept = 1  # gunicorn/workers/ggevent.py, when workers > 1
    accepted, taken = [0], []
    accept_one = server.do_read

    def do_read():
        result = accept_one()
        accepted[0] += result is not None
        return result

    server.do_read = do_read
    take = server._do_read

    def callback():
        before = accepted[0]
        take()
        taken.append(accepted[0] - before)

    server._do_read = callback
    server.start()
    while sum(taken) < waiting:
        gevent.sleep(0.01)
    print(taken[0], len(taken))
    """
)


def _first_accept(waiting: int, **env: str) -> tuple[int, int]:
    ran = subprocess.run(
        [sys.executable, "-c", _WORKER, str(ROOT / "gunicorn.conf.py"), str(waiting)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    first, callbacks = ran.stdout.split()
    return int(first), int(callbacks)


@pytest.mark.parametrize(
    ("batch", "waiting", "first"), [(None, 40, 32), ("10", 25, 10), ("64", 40, 40), ("0", 3, 1)]
)
def test_a_gevent_worker_takes_the_waiting_connections_in_batches(batch, waiting, first):
    env = {"WEB_ACCEPT_BATCH": batch} if batch else {}
    taken, callbacks = _first_accept(waiting, **env)
    assert taken == first
    assert callbacks == -(-waiting // first)  # every callback a full batch but the last


def test_the_thread_bound_worker_class_is_left_as_gunicorn_sets_it():
    """``WEB_WORKER_CLASS=gthread``: nothing is installed, gevent's server keeps gunicorn's 1."""
    taken, callbacks = _first_accept(5, WEB_WORKER_CLASS="gthread")
    assert (taken, callbacks) == (1, 5)
