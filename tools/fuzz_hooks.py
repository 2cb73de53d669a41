"""schemathesis hooks of ``tools/fuzz_schema.py``: real ids in most generated requests.

A generated UUID names nothing, so without real ids every operation on a room, agent or session
would stop at its 404. Before each call, each path parameter becomes, with probability
``REAL_ID_SHARE``, an id the fuzzing user owns, or with ``HOSTILE_SEGMENT_SHARE`` one of the
``HOSTILE_SEGMENTS``; the rest keep what was generated, so malformed and foreign ids are tried too.
DELETE operations get the spare objects, so the ones the other operations use survive; an agent
renamed by a PATCH is followed under its new key. Likewise most bodies get a catalog model alias and
an agent's tag, so agents are made and turns run.
"""

import atexit
import json
import os
import random
import threading
from collections import Counter, defaultdict
from pathlib import Path

import schemathesis

REAL_ID_SHARE = 0.8
CATALOG_ALIASES = ("deepseek", "qwen", "gpt-4o-mini", "claude-haiku", "llama")
# schemathesis never puts a NUL (or other bytes web servers may strip) in a path parameter; these
# percent-encoded segments try them: NUL, line breaks, DEL, bytes that are not UTF-8, an encoded
# surrogate, an overlong NUL, a bidi override.
HOSTILE_SEGMENTS = (
    "%00",
    "writer%00",
    "%00writer",
    "%0A",
    "%0D%0A",
    "%7F",
    "%FF",
    "%C0%80",
    "%ED%A0%80",
    "%E2%80%AE",
)
HOSTILE_SEGMENT_SHARE = 0.1
AGENT_DETAIL = "/api/v1/rooms/{room_id}/agents/{agent_key}"

_ids = json.loads(Path(os.environ["FUZZ_IDS_FILE"]).read_text()) if "FUZZ_IDS_FILE" in os.environ else {}
_random = random.Random(int(os.environ.get("FUZZ_SEED", "1")))
_lock = threading.Lock()
# Responses by operation and status, written to FUZZ_STATS_FILE at exit for the run's report.
_statuses: defaultdict[str, Counter] = defaultdict(Counter)


@atexit.register
def _statuses_write() -> None:
    if "FUZZ_STATS_FILE" in os.environ:
        with open(os.environ["FUZZ_STATS_FILE"], "w") as f:
            json.dump(_statuses, f)


def real_path_parameters(method: str, path: str, ids: dict) -> dict[str, str]:
    """The owned ids for an operation's path parameters (spare ones for a DELETE)."""
    real = {"room_id": ids["room_id"], "agent_key": ids["agent_key"], "session_id": ids["session_id"]}
    if method.upper() == "DELETE":
        last = path.rsplit("/", 1)[-1]
        spare = {"{room_id}": "room_id", "{agent_key}": "agent_key", "{session_id}": "session_id"}.get(last)
        if spare:  # other DELETEs (an API key) keep their generated id
            real[spare] = ids[f"spare_{spare}"]
    return real


def body_deepen(body: dict, draw: float, choice: str) -> None:
    """Turn a generated body into one that goes further: a catalog model for an agent, a tag of a
    real agent in a turn's input (random ones are refused at the first check)."""
    if draw >= REAL_ID_SHARE:
        return
    if isinstance(body.get("model_alias"), str):
        body["model_alias"] = choice
    if isinstance(body.get("user_input"), str):
        body["user_input"] = f"@{_ids['agent_key']} {body['user_input']}"
    if isinstance(body.get("model"), str):  # the OpenAI-compatible endpoint: a room of the user …
        body["model"] = f"room-{_ids['room_id']}"
    if isinstance(body.get("messages"), list):  # … and a last message that tags its agent
        body["messages"].append({"role": "user", "content": f"@{_ids['agent_key']} hello"})


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    with _lock:
        if case.path_parameters:
            real = real_path_parameters(case.operation.method, case.operation.path, _ids)
            for name in case.path_parameters:
                draw = _random.random()
                if name in real and draw < REAL_ID_SHARE:
                    case.path_parameters[name] = real[name]
                elif draw > 1 - HOSTILE_SEGMENT_SHARE:
                    case.path_parameters[name] = _random.choice(HOSTILE_SEGMENTS)
        if isinstance(case.body, dict):
            body_deepen(case.body, _random.random(), _random.choice(CATALOG_ALIASES))


@schemathesis.hook
def after_call(context, case, response) -> None:
    with _lock:
        _statuses[f"{case.operation.method.upper()} {case.operation.path}"][str(response.status_code)] += 1
    renamed = (
        case.operation.method.upper() == "PATCH"
        and case.operation.path == AGENT_DETAIL
        and response.status_code == 200
        and case.path_parameters.get("agent_key") == _ids.get("agent_key")
    )
    if renamed:
        with _lock:
            _ids["agent_key"] = response.json()["agent_key"]
