"""Row 6 of the credentials audit: a header over 8 KB, control characters in a header, invalid UTF-8
in the path, a 4 KB URL — answered by gunicorn with its HTML pages, not the API's JSON. Raw bytes on
a socket to the production server (gunicorn with the repository's gunicorn.conf.py)."""

import json
import socket

import pytest

from pantheon.testing.processes import app_env, gunicorn

pytestmark = pytest.mark.integration


def raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


CASES = {
    "a header over 8 KB": (
        b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
    ),
    "a 5 KB URL": (b"GET /api/v1/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    "a control character in a header": (
        b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-C: a\x01b\r\n\r\n",
        400,
    ),
    "invalid UTF-8 in the path": (b"GET /api/v1/\xff\xfe HTTP/1.1\r\nHost: localhost\r\n\r\n", None),
}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_what_gunicorn_refuses_by_itself_is_answered_in_json(database_url, tmp_path):
    with gunicorn(env=app_env(DATABASE_URL=database_url), log=tmp_path / "gunicorn.log", workers=1) as server:
        answers = {name: raw(server.url, request) for name, (request, _) in CASES.items()}
    for name, (_, expected) in CASES.items():
        status, headers, body = answers[name]
        assert 400 <= status < 500, (name, status, body)
        assert expected is None or status == expected, (name, status)
        assert headers["content-type"].startswith("application/json"), (name, headers, body)
        error = json.loads(body)
        assert error["detail"] and error["code"], (name, error)
        assert b"<html" not in body.lower()
