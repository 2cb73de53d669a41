"""The WSGI entry point (gunicorn, runserver): the application, warmed before its first request."""

import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pantheon.settings.base")

application = get_wsgi_application()


def warm_up() -> None:
    """Build now what the first turn would otherwise build while a user waits: every view module
    (the URL configuration imports them), the tokenizer's tables, the LLM provider's client and the
    database pool's first connections (this runs in each worker, after gunicorn has forked it)."""
    from django.urls import get_resolver

    from orchestration.llm.registry import gateway_get
    from orchestration.llm.tokens import count_text_tokens
    from pantheon.db_connections import pool_warm

    get_resolver().url_patterns  # noqa: B018 (imports every view, serializer and service)
    count_text_tokens("warm up")
    gateway_get()
    pool_warm()


try:
    warm_up()
except Exception:  # a cold first request is better than a process that does not start
    logging.getLogger(__name__).exception("warm-up failed; the first requests will build what is missing")
