"""Who is asking: the client's address, the one every limit is keyed on.

``X-Forwarded-For`` is a list a client can start with anything it likes; only the entries that the
operator's own proxies appended are facts. With ``TRUSTED_PROXY_COUNT`` proxies in front of the app,
each appending the address it was connected from, the client's address is the ``TRUSTED_PROXY_COUNT``-th
entry from the right. With 0 (the default: nothing in front) the header is ignored and the socket's
address is the client's. A header with fewer entries than trusted proxies (a request that came round
them) falls back to its leftmost entry, which a trusted proxy still wrote.
"""

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR") or ""
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if not forwarded:
        return remote
    return forwarded[-trusted] if len(forwarded) >= trusted else forwarded[0]
