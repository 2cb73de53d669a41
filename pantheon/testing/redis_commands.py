"""What clients send a Redis server, read from its MONITOR feed, and the connections they open: for
tests that count the round trips and connections an operation costs."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis


@contextmanager
def commands_sent(url: str) -> Iterator[list[str]]:
    """The commands clients send the server at ``url`` while the block runs, in order, as MONITOR
    shows them (``'EVALSHA 3f2a… 1 :1:key 120'``); not the commands that scripts run inside the
    server. The list is filled when the block ends: a marker sent after it ends the reading, so no
    command of the block can still be on its way."""
    watcher = redis.Redis.from_url(url, socket_timeout=10)
    marker = redis.Redis.from_url(url, socket_timeout=10)
    sent: list[str] = []
    try:
        marker.ping()  # connected (its handshake sent) before the feed starts
        with watcher.monitor() as monitor:
            yield sent
            end = f"end-of-block-{uuid.uuid4().hex}"
            marker.echo(end)
            while (command := monitor.next_command())["command"] != f"ECHO {end}":
                if command["client_type"] != "lua":
                    sent.append(command["command"])
    finally:
        watcher.close()
        marker.close()


@contextmanager
def connections_opened(url: str) -> Iterator[list[int]]:
    """How many connections clients opened to the server at ``url`` while the block ran (the list
    holds that one number once the block ends); this watcher's own is opened before it starts."""
    watcher = redis.Redis.from_url(url, socket_timeout=10)
    opened: list[int] = []
    try:
        before = watcher.info("stats")["total_connections_received"]
        yield opened
        opened.append(watcher.info("stats")["total_connections_received"] - before)
    finally:
        watcher.close()
