"""Request body parsers: DRF's, with a bound on how deeply a JSON body may nest.

Python's JSON decoder recurses once per level, so a body of a thousand ``[`` is a ``RecursionError``
(a 500) before any serializer sees it, and a body just under that limit could still exhaust the
stack of whatever walks it next. No request of the API nests more than a few levels: anything past
``API_JSON_MAX_DEPTH`` is refused as malformed (400 ``invalid``).
"""

import gc
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) has arrays or objects nested more than ``limit`` deep.

    Level by level, so walking a deep value cannot itself recurse too deep; only arrays and objects
    are carried to the next level, tested by exact type (what ``json`` makes), as a chat body holds
    hundreds of thousands of values. ``[]`` is 1 deep, ``[[1]]`` 2.
    """
    level = [data] if isinstance(data, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper = []
        for value in level:
            for child in value.values() if isinstance(value, dict) else value:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
    return False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a body's objects are built (parsed, or validated
    into objects of our own): it runs every few hundred new containers and, as they pile up, scans
    the whole heap again and again — a body of millions of small arrays parsed 4–6 times slower.
    What is built here makes no cycles, and nothing else runs meanwhile (no I/O: the body is read
    beforehand, so no other greenlet is switched to); a collector already off is left off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_JSON_MAX_DEPTH
        too_deep = ParseError(f"JSON parse error - the body nests deeper than {limit} levels.")
        body = io.BytesIO(stream.read())  # read first: the collector is off only while parsing
        try:
            with collector_paused():
                data = super().parse(body, media_type, parser_context)
        except RecursionError as exc:
            raise too_deep from exc
        if json_depth_exceeds(data, limit):
            raise too_deep
        return data
