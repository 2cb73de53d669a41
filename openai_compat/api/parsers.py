"""The endpoint's JSON body, bounded by ``OPENAI_REQUEST_MAX_BYTES`` rather than Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE``: a chat client resends the whole conversation with every message, so
a long chat is a body of megabytes. Over the bound: 413 ``request_too_large``, before the body is
read into memory when its Content-Length says so.

Not a subclass of DRF's ``JSONParser``: DRF hands those ``request.body`` (which applies Django's
bound and raises ``RequestDataTooBig``, a 500); any other parser reads the request's stream.
"""

import io

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException

from pantheon.api.parsers import JSONParser


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes (OPENAI_REQUEST_MAX_BYTES).")


class BoundedJSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.OPENAI_REQUEST_MAX_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(limit)
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(limit)
        return JSONParser().parse(io.BytesIO(body), media_type, parser_context)
