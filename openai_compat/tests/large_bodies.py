"""``python -m openai_compat.tests.large_bodies``: the CPU one chat completion of
``OPENAI_REQUEST_MAX_BYTES`` costs, step by step, and a profile of the whole request (a measurement
run by hand, not a test: docs/performance.md, "Large OpenAI-compatible bodies").

A gevent worker runs every request of its process on one event loop, so the CPU a single body costs
(parsing, validation, normalization, fingerprints) is time every other request of that process
waits. Bodies just under the bound:

- **many**: ~100,000 messages of 300 characters (a long chat resent whole);
- **huge**: three messages of ~10 MiB each, and a last one of 5,000 characters;
- **unicode**: the same in Greek (no ASCII shortcut for the text checks);
- **parts**: ~80,000 messages whose content is a list of three text parts;
- **tiny**: ~1,000,000 messages of one character;
- **ignored**: one message and a field no one reads holding ~8,000,000 empty arrays.

Each is timed step by step (CPU seconds of this process), then sent twice through Django's test
client with the offline provider: a new conversation, then its continuation (the history plus the
reply, which finds the session by its fingerprint). ``--profile`` prints cProfile's top functions
of the continuation. It uses the database of ``DATABASE_URL`` (migrated) and writes a user, a room
and the sessions of each run there.

    DATABASE_URL=postgres://…/pantheon_x python -m openai_compat.tests.large_bodies [--only many] [--profile]
"""

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import time
import uuid
from collections.abc import Callable

SEED_CHARS = 300


def body_many(limit: int, nonce: str) -> dict:
    """As many 300-character messages as fit, user and assistant in turn, ending with the user's."""
    message = len(json.dumps({"role": "assistant", "content": "x" * SEED_CHARS})) + 2
    count = (limit - 4096) // message
    count -= count % 2 == 0  # odd: the last one is the user's
    return {
        "messages": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"{nonce} {i:06d} ".ljust(SEED_CHARS, "x"),
            }
            for i in range(count - 1)
        ]
        + [{"role": "user", "content": f"@writer {nonce} and now?"}]
    }


def body_huge(limit: int, nonce: str) -> dict:
    """Three messages of ~10 MiB (a user's, a reply, a user's left unanswered), then the last: an
    input of 5,000 characters (one the writer's context budget takes)."""
    each = (limit - 8192) // 3
    return {
        "messages": [
            {"role": "user", "content": f"{nonce} " + "a" * each},
            {"role": "assistant", "content": "Writer: " + "b " * (each // 2)},
            {"role": "user", "content": "c " * (each // 2)},
            {"role": "user", "content": f"@writer {nonce} " + "word " * 1000},
        ]
    }


def body_unicode(limit: int, nonce: str) -> dict:
    """As ``huge``, in Greek (two bytes a character in UTF-8, sent unescaped): the text checks that
    read every character cannot take the ASCII shortcut."""
    each = (limit - 16384) // 3
    return {
        "messages": [
            {"role": "user", "content": f"{nonce} " + "αβ " * (each // 5)},
            {"role": "assistant", "content": "Writer: " + "γδ " * (each // 5)},
            {"role": "user", "content": "εζ " * (each // 5)},
            {"role": "user", "content": f"@writer {nonce} " + "λόγος " * 500},
        ]
    }


def body_parts(limit: int, nonce: str) -> dict:
    """Messages of three text parts each (as clients that send parts do), 300 characters in all."""
    part = {"type": "text", "text": "p" * 143}
    message = (
        len(json.dumps({"role": "assistant", "content": [{"type": "text", "text": "x" * 14}, part, part]}))
        + 2
    )
    count = (limit - 4096) // message
    count -= count % 2 == 0
    return {
        "messages": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": [{"type": "text", "text": f"{nonce} {i:06d}"}, part, part],
            }
            for i in range(count - 1)
        ]
        + [{"role": "user", "content": [{"type": "text", "text": f"@writer {nonce} and now?"}]}]
    }


def body_tiny(limit: int, nonce: str) -> dict:
    """The most messages a body holds: ~1,000,000 of one character (the worst case per message)."""
    message = len(json.dumps({"role": "assistant", "content": "b"})) + 2
    count = (limit - 4096) // message
    count -= count % 2 == 0
    return {
        "messages": [{"role": "user", "content": nonce}]
        + [{"role": "assistant" if i % 2 == 0 else "user", "content": "ab"[i % 2]} for i in range(count - 2)]
        + [{"role": "user", "content": f"@writer {nonce} and now?"}]
    }


def body_ignored(limit: int, nonce: str) -> dict:
    """One message and a field nobody reads holding ~10,000,000 empty arrays: the JSON parser's and
    the depth check's worst case, whatever the validation."""
    return {
        "messages": [{"role": "user", "content": f"@writer {nonce} hello"}],
        "ignored": [[]] * ((limit - 4096) // 4),
    }


BODIES: dict[str, Callable[[int, str], dict]] = {
    "many": body_many,
    "huge": body_huge,
    "unicode": body_unicode,
    "parts": body_parts,
    "tiny": body_tiny,
    "ignored": body_ignored,
}


def cpu(label: str, action: Callable[[], object], figures: dict[str, float]) -> object:
    started = time.process_time()
    result = action()
    figures[label] = time.process_time() - started
    return result


def steps(payload: bytes, figures: dict[str, float]) -> None:
    """The request's steps before the turn, one by one, as the view runs them."""
    from rest_framework.test import APIRequestFactory

    from openai_compat import services
    from openai_compat.api.parsers import BoundedJSONParser
    from openai_compat.api.serializers import ChatCompletionRequestSerializer
    from openai_compat.fingerprint import fingerprint_of

    request = APIRequestFactory().post("/", payload, content_type="application/json")
    data = cpu(
        "parse",
        lambda: BoundedJSONParser().parse(io.BytesIO(payload), parser_context={"request": request}),
        figures,
    )
    serializer = ChatCompletionRequestSerializer(data=data)
    valid = cpu("validate", serializer.is_valid, figures)
    assert valid, str(serializer.errors)[:500]
    messages = cpu("messages", serializer.validated_messages, figures)
    history, _ = cpu("split", lambda: services._conversation_split(messages), figures)
    cpu("fingerprint", lambda: fingerprint_of(history), figures)
    cpu(
        "key fingerprint",
        lambda: services._key_fingerprint(model=_Model(), messages=messages, session_id=None),
        figures,
    )


class _Model:
    id = "room-x"


def requests(client, model: str, body: dict, figures: dict[str, float], profile: bool) -> None:
    """A new conversation, then its continuation (history + reply + a question)."""
    from openai_compat.api.views import SESSION_HEADER

    def post(label: str, body: dict, profiler: cProfile.Profile | None = None) -> dict:
        payload = json.dumps({"model": model, **body}, ensure_ascii=False).encode()
        started, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        response = client.post("/api/openai/v1/chat/completions", payload, content_type="application/json")
        if profiler:
            profiler.disable()
        figures[label] = time.process_time() - started
        figures[label + " (wall)"] = time.perf_counter() - wall
        assert response.status_code == 200, response.content[:500]
        return response

    first = post("request: new conversation", body)
    reply = first.json()["choices"][0]["message"]["content"]
    following = {
        **body,
        "messages": [
            *body["messages"],
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "@writer go on"},
        ],
    }
    profiler = cProfile.Profile() if profile else None
    second = post("request: continuation", following, profiler)
    assert second[SESSION_HEADER] == first[SESSION_HEADER], "the continuation did not find its session"
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"^(?!.*site-packages)", 40)
        out.write("\n--- by own time ---\n")
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openai_compat.tests.large_bodies", description=__doc__)
    parser.add_argument("--only", choices=sorted(BODIES), action="append")
    parser.add_argument("--profile", action="store_true", help="cProfile of each continuation")
    parser.add_argument(
        "--bytes", type=int, default=None, help="body size (default OPENAI_REQUEST_MAX_BYTES)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pantheon.settings.base")
    os.environ.setdefault("LLM_PROVIDER", "offline")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from tools.bench.fixtures import WRITER, _room_make, _user_make

    settings.ALLOWED_HOSTS = ["*"]
    logging.disable(logging.WARNING)  # a line per turn, not what is measured
    limit = args.bytes or settings.OPENAI_REQUEST_MAX_BYTES
    user, token = _user_make()
    room = _room_make(user, "Large bodies", (WRITER,))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    for name in args.only or BODIES:
        body = BODIES[name](limit, uuid.uuid4().hex[:8])
        payload = json.dumps({"model": f"room-{room.pk}", **body}, ensure_ascii=False).encode()
        assert len(payload) <= limit, len(payload)
        figures: dict[str, float] = {}
        steps(payload, figures)
        requests(client, f"room-{room.pk}", body, figures, args.profile)
        print(f"{name}: {len(payload) / 2**20:.1f} MiB, {len(body['messages']):,} messages")
        for label, seconds in figures.items():
            print(f"  {label:<34} {seconds:8.3f} s")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
