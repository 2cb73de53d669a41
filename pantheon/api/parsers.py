"""Request body parsers: DRF's, with a bound on how deeply a JSON body may nest.

Python's JSON decoder recurses once per level, so a body of a thousand ``[`` is a ``RecursionError``
(a 500) before any serializer sees it, and a body just under that limit could still exhaust the
stack of whatever walks it next. No request of the API nests more than a few levels: anything past
``API_JSON_MAX_DEPTH`` is refused as malformed (400 ``invalid``).
"""

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) has arrays or objects nested more than ``limit`` deep.

    Iterative, so walking a deep value cannot itself recurse too deep. ``[]`` is 1 deep, ``[[1]]`` 2.
    """
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_JSON_MAX_DEPTH
        too_deep = ParseError(f"JSON parse error - the body nests deeper than {limit} levels.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise too_deep from exc
        if json_depth_exceeds(data, limit):
            raise too_deep
        return data
