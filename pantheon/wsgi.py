"""The WSGI entry point (gunicorn, runserver): the application, warmed before its first request."""

import contextlib
import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pantheon.settings.base")

application = get_wsgi_application()


def _reverse_tables_build(resolver) -> None:
    """Django builds a resolver's name → pattern tables (compiling their regular expressions) at
    the first ``reverse``: every turn's response links its session and room."""
    resolver.reverse_dict  # noqa: B018
    for _prefix, namespaced in resolver.namespace_dict.values():
        _reverse_tables_build(namespaced)


def warm_up() -> None:
    """Build now what the first turn would otherwise build while a user waits: every view module
    (the URL configuration imports them) and the tables ``reverse`` uses, the tokenizer's tables, the
    LLM provider's client, the platform its SDK reports and its host's address (under gevent the
    first lookup starts the resolver's threads), and the database pool's first connection (this
    runs in each worker, after gunicorn has forked it)."""
    import socket
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.urls import get_resolver

    from orchestration.llm.registry import gateway_get
    from orchestration.llm.tokens import count_text_tokens
    from pantheon.db_connections import pool_warm

    _reverse_tables_build(get_resolver())  # imports every view, serializer and service, too
    count_text_tokens("warm up")
    client = getattr(gateway_get(), "client", None)
    if client is not None:
        # The openai SDK sends the platform in its headers, asked once per process of `uname -p`: a
        # fork and a pipe, ~20 ms of the first call under gevent.
        client.platform_headers()
    if host := urlsplit(settings.LLM_BASE_URL or "").hostname:
        with contextlib.suppress(OSError):
            socket.getaddrinfo(host, None)
    pool_warm()


try:
    warm_up()
except Exception:  # a cold first request is better than a process that does not start
    logging.getLogger(__name__).exception("warm-up failed; the first requests will build what is missing")
