"""What gunicorn answers by itself, before any request reaches Django — a request line over its limit
(414), a header over 8 KB or too many headers (431), a malformed request line, method or header (400,
e.g. control characters in a header or bytes that are not a path) — in the API's error shape instead
of gunicorn's HTML page. Installed in every worker by ``gunicorn.conf.py``.

Also how many connections a gevent worker accepts at a time (``accept_batch_install``)."""

import json

from gunicorn import util

# Gunicorn's status → the API's error code (docs/api-errors.md).
CODES = {
    400: "invalid",
    403: "permission_denied",
    414: "request_line_too_long",
    417: "invalid",
    431: "request_headers_too_large",
    501: "not_implemented",
}
DETAILS = {
    400: "Malformed request.",
    414: "The request line (method and URL) is too long.",
    431: "A request header is too large, or there are too many.",
}


def json_error_write(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, writing JSON. What gunicorn says of the input is not echoed:
    it would send back what the client wrote, control characters included."""
    body = json.dumps(
        {"detail": DETAILS.get(status_int, f"{reason}."), "code": CODES.get(status_int, "server_error")}
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def json_errors_install() -> None:
    util.write_error = json_error_write


def accept_batch_install(worker, batch: int) -> None:
    """A gevent worker accepts up to ``batch`` waiting connections each time its listening socket is
    ready (``WEB_ACCEPT_BATCH``), whatever the number of workers (gunicorn's own choice is 1 with
    several workers, gevent's 100 with one). With 1, a worker accepts one connection per pass of its
    event loop; during a burst of turns a pass is every ready request's next step, so the connections
    queued in the kernel behind the burst — a health check among them — waited seconds there before
    any of them was read (docs/performance.md, "Accepting in batches"). Called in the worker process
    before its server starts (gunicorn's gevent worker reads ``StreamServer`` from its module when it
    builds the server); any other worker class is left as it is."""
    from gunicorn.workers import ggevent

    if not isinstance(worker, ggevent.GeventWorker):
        return

    class StreamServer(ggevent.StreamServer):
        @property
        def max_accept(self) -> int:
            return batch

        @max_accept.setter
        def max_accept(self, value: int) -> None:
            """gunicorn's ``max_accept = 1`` is ignored."""

    ggevent.StreamServer = StreamServer
