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


def test_httpcores_network_stream_asks_through_it(pair):
    """What the pool's expiry check calls (``get_extra_info("is_readable")``) is this check."""
    ours, theirs = pair
    assert httpcore_sync.is_socket_readable is idle_check.socket_readable
    stream = httpcore_sync.SyncStream(ours)
    assert stream.get_extra_info("is_readable") is False
    theirs.close()
    assert stream.get_extra_info("is_readable") is True


def test_under_gevent_the_check_of_a_hundred_idle_sockets_never_leaves_the_greenlet():
    """Patched, ``select.poll`` is gevent's: httpcore's own check goes through the event loop for
    every idle connection (a switch to the hub and back each); this one makes none."""
    code = textwrap.dedent(
        """
        from gevent import monkey

        monkey.patch_all()
        import socket

        import greenlet
        from httpcore2._utils import is_socket_readable

        from orchestration.llm.idle_check import socket_readable

        pairs = [socket.socketpair() for _ in range(100)]
        switches = [0]
        greenlet.settrace(lambda event, args: switches.__setitem__(0, switches[0] + (event == "switch")))
        for check in (is_socket_readable, socket_readable):
            switches[0] = 0
            readable = sum(check(ours) for ours, _ in pairs)
            print(check.__module__, readable, switches[0])
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    httpcore_line, ours_line = ran.stdout.splitlines()
    assert httpcore_line.split()[:2] == ["httpcore2._utils", "0"]
    assert int(httpcore_line.split()[2]) >= 100  # at least one switch per socket
    assert ours_line.split() == ["orchestration.llm.idle_check", "0", "0"]
