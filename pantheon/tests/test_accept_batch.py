"""A gevent worker of the shipped configuration accepts the connections waiting for it in batches
(``WEB_ACCEPT_BATCH``, pantheon/serving.py), not one per pass of its event loop as gunicorn sets it
whenever there is more than one worker."""

import os
import subprocess
import sys
import textwrap

import pytest

from pantheon.testing.processes import ROOT

# A gevent process, as a worker is: gunicorn's own GeventWorker (two workers configured, so its
# run() sets max_accept to 1) after gunicorn.conf.py's post_worker_init, serving a listening socket
# at which ``WAITING`` connections are queued before it starts. Prints how many connections the
# first accept callback took, and how many callbacks took them all.
_WORKER = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()
    import os
    import runpy
    import socket
    import sys

    import gevent
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.workers import ggevent

    conf = runpy.run_path(sys.argv[1])
    waiting = int(sys.argv[2])
    cfg = Config()
    cfg.set("workers", 2)
    cfg.set("worker_class", "gevent")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(waiting)]

    worker = ggevent.GeventWorker(1, os.getppid(), [listener], None, 30, cfg, Logger(cfg))
    conf["post_worker_init"](worker)

    accepted, taken = [0], []

    class Counting(ggevent.StreamServer):
        def do_read(self):
            result = super().do_read()
            accepted[0] += result is not None
            return result

        def _do_read(self):
            before = accepted[0]
            super()._do_read()
            taken.append(accepted[0] - before)

    ggevent.StreamServer = Counting
    gevent.spawn(worker.run)
    while sum(taken) < waiting:
        gevent.sleep(0.01)
    print(taken[0], len(taken))
    sys.stdout.flush()
    os._exit(0)
    """
)


def _first_accept(waiting: int, **env: str) -> tuple[int, int]:
    environment = {k: v for k, v in os.environ.items() if k not in ("WEB_ACCEPT_BATCH", "WEB_WORKER_CLASS")}
    ran = subprocess.run(
        [sys.executable, "-c", _WORKER, str(ROOT / "gunicorn.conf.py"), str(waiting)],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    first, callbacks = ran.stdout.split()
    return int(first), int(callbacks)


@pytest.mark.parametrize(
    ("batch", "waiting", "first"), [(None, 40, 32), ("10", 25, 10), ("64", 40, 40), ("0", 3, 1), ("", 40, 32)]
)
def test_a_gevent_worker_takes_the_waiting_connections_in_batches(batch, waiting, first):
    env = {} if batch is None else {"WEB_ACCEPT_BATCH": batch}
    taken, callbacks = _first_accept(waiting, **env)
    assert taken == first
    assert callbacks == -(-waiting // first)  # every callback a full batch but the last


def test_another_worker_class_is_left_as_it_is():
    """A thread worker (``WEB_WORKER_CLASS=gthread``): gevent's server class is not replaced."""
    code = textwrap.dedent(
        """
        import runpy
        import sys

        import gevent.server
        from gunicorn.config import Config
        from gunicorn.glogging import Logger
        from gunicorn.workers import ggevent
        from gunicorn.workers.gthread import ThreadWorker

        cfg = Config()
        cfg.set("worker_class", "gthread")
        worker = ThreadWorker(1, 1, [], None, 30, cfg, Logger(cfg))
        runpy.run_path(sys.argv[1])["post_worker_init"](worker)
        print(ggevent.StreamServer is gevent.server.StreamServer)
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "gunicorn.conf.py")],
        env={**os.environ, "WEB_WORKER_CLASS": "gthread"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split()[-1] == "True"
