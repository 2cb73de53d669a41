"""What gunicorn answers by itself, before any request reaches Django — a request line over its limit
(414), a header over 8 KB or too many headers (431), a malformed request line, method or header (400,
e.g. control characters in a header or bytes that are not a path) — in the API's error shape instead
of gunicorn's HTML page. Installed in every worker by ``gunicorn.conf.py``."""

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
