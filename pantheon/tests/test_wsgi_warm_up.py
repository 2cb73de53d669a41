"""What each worker builds before its first request (pantheon/wsgi.py): the first turn must not pay
for it (docs/performance.md, "cold")."""

import pytest
from django.urls import clear_url_caches, get_resolver

from pantheon.wsgi import warm_up


@pytest.mark.django_db
def test_warm_up_builds_every_reverse_table(fake_llm):
    clear_url_caches()
    resolver = get_resolver()
    assert not resolver._populated
    warm_up()
    assert resolver._populated
    namespaced = [sub for _prefix, sub in resolver.namespace_dict.values()]
    assert namespaced, "the API's URLs are namespaced"
    assert all(sub._populated for sub in namespaced)


@pytest.mark.django_db
def test_after_warm_up_a_provider_call_starts_no_process(fake_llm, monkeypatch):
    """The openai SDK reports the platform in its headers and asks ``uname -p`` for it, once per
    process: under gevent that fork cost the first turn ~20 ms."""
    import platform
    import subprocess

    from openai import _base_client

    from orchestration.llm.gateway import ChatMessage, LlmRequest
    from orchestration.llm.registry import gateway_get

    _base_client.platform_headers.cache_clear()
    monkeypatch.setattr(platform, "_uname_cache", None)  # as in a process that never asked
    monkeypatch.setattr(platform, "_platform_cache", {})
    warm_up()

    started = []

    def no_process(*args, **kwargs):
        started.append(args)
        raise OSError("no process here")  # the SDK swallows errors there: counted, not raised

    monkeypatch.setattr(subprocess, "Popen", no_process)
    reply = gateway_get().complete(
        LlmRequest(
            model_alias="deepseek",
            provider_model="deepseek/deepseek-chat",
            messages=(ChatMessage(role="user", content="hello"),),
            max_output_tokens=20,
        )
    )
    assert reply.content
    assert started == []
