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
