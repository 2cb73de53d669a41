"""The provider client's pool asks whether an idle connection was closed with the interpreter's poll
(orchestration/llm/idle_check.py): the same answer as httpcore's own check, without gevent's event
loop."""

import os
import socket
import subprocess
import sys
import textwrap

import httpcore2._backends.sync as httpcore_sync
import pytest

from orchestration.llm import idle_check, openai_provider  # noqa: F401 (installs the check)
from pantheon import sockets
from pantheon.testing.processes import ROOT


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_an_idle_connection_the_server_has_not_touched_is_not_readable(pair):
    ours, _ = pair
    assert idle_check.socket_readable(ours) is False


def test_a_connection_the_server_wrote_to_or_closed_is_readable(pair):
    ours, theirs = pair
    theirs.sendall(b"x")
    assert idle_check.socket_readable(ours) is True
    ours.recv(1)
    assert idle_check.socket_readable(ours) is False
    theirs.close()
    assert idle_check.socket_readable(ours) is True


def test_a_socket_gone_counts_as_readable():
    gone = socket.socket()
    gone.close()
    assert idle_check.socket_readable(None) is True
    assert idle_check.socket_readable(gone) is True


def test_httpcores_network_stream_asks_through_it(pair, monkeypatch):
    """What the pool's expiry check calls (``get_extra_info("is_readable")``) reaches this check's
    poll."""
    ours, theirs = pair
    polls = []

    def counted():
        polls.append(1)
        return original()

    original = sockets._poll
    monkeypatch.setattr(sockets, "_poll", counted)
    stream = httpcore_sync.SyncStream(ours)
    assert stream.get_extra_info("is_readable") is False
    theirs.close()
    assert stream.get_extra_info("is_readable") is True
    assert len(polls) == 2


def test_under_gevent_the_pool_checks_a_hundred_idle_sockets_without_leaving_the_greenlet():
    """Patched, ``select.poll`` is gevent's: httpcore's own check goes through the event loop for
    each idle connection (a switch to the hub and back); once installed, the same calls make none."""
    code = textwrap.dedent(
        """
        from gevent import monkey

        monkey.patch_all()
        import socket

        import greenlet
        from httpcore2._backends.sync import SyncStream

        from orchestration.llm import idle_check

        pairs = [socket.socketpair() for _ in range(100)]  # both ends kept open: nothing to read
        streams = [SyncStream(ours) for ours, _ in pairs]
        switches = [0]
        greenlet.settrace(lambda event, args: switches.__setitem__(0, switches[0] + (event == "switch")))
        for installed in (False, True):
            if installed:
                idle_check.install()
            switches[0] = 0
            readable = sum(stream.get_extra_info("is_readable") for stream in streams)
            print(installed, readable, switches[0])
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    before, after = (line.split() for line in ran.stdout.splitlines())
    assert before[:2] == ["False", "0"]
    assert int(before[2]) > 0
    assert after == ["True", "0", "0"]
