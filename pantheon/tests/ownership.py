"""The ownership matrix, reusable by every app's API tests (NetBox-style: one mixin, every endpoint).

A test class mixes in ``OwnershipMatrix`` and declares:

- ``endpoints``: ``(method, url_template, body)`` rows that must answer someone else 404, exactly as
  a missing object would (``{"detail": "Not found.", "code": "not_found"}``), and change nothing;
- ``lists``: ``(url_template, result_key, value_template)`` rows: top-level lists that must not show
  someone else's objects (the owner's own view of the same list is the control that it would);
- ``missing``: for a URL placeholder, a value that names nothing (UUIDs by default);
- ``make_victim(self)``: creates the objects, owned by a third user; returns ``(owner, url_kwargs)``;
- ``snapshot(self, url_kwargs)``: the victim's rows as they are in the database.

Each row becomes its own test (``pytest_generate_tests`` on the class), named by method and path:
someone else's object is a 404 and stays unchanged; the owner reads the same URLs (the control that
the 404s come from ownership, not from a wrong URL); and the owner asking for a missing object —
each placeholder in turn — gets the very same 404.
"""

from typing import Any, ClassVar

import pytest

NOT_FOUND = {"detail": "Not found.", "code": "not_found"}
SAFE_METHODS = {"get", "head", "options"}
MISSING_ID = "00000000-0000-4000-8000-000000000000"


class OwnershipMatrix:
    endpoints: ClassVar[list[tuple[str, str, dict | None]]] = []
    lists: ClassVar[list[tuple[str, str, str]]] = []
    missing: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.lists:  # nested resources have no top-level list to leak into
            cls.test_lists_never_show_someone_elses_objects = None

    def make_victim(self) -> tuple[Any, dict[str, str]]:
        raise NotImplementedError

    def snapshot(self, url_kwargs: dict[str, str]) -> Any:
        raise NotImplementedError

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "endpoint" in metafunc.fixturenames:
            metafunc.parametrize(
                "endpoint", self.endpoints, ids=[f"{m.upper()} {url}" for m, url, _ in self.endpoints]
            )
        if "read_endpoint" in metafunc.fixturenames:
            reads = [(m, url, body) for m, url, body in self.endpoints if m in SAFE_METHODS]
            metafunc.parametrize("read_endpoint", reads, ids=[f"{m.upper()} {url}" for m, url, _ in reads])
        if "listing" in metafunc.fixturenames:
            metafunc.parametrize("listing", self.lists, ids=[url for url, _, _ in self.lists])

    @pytest.fixture
    def victim(self, db) -> tuple[Any, dict[str, str]]:
        return self.make_victim()

    def test_someone_elses_object_is_404_and_unchanged(self, other_client, victim, endpoint):
        _, url_kwargs = victim
        method, url, body = endpoint
        before = self.snapshot(url_kwargs)
        response = getattr(other_client, method)(url.format(**url_kwargs), body, format="json")
        assert response.status_code == 404, response.content
        assert response.json() == NOT_FOUND
        assert self.snapshot(url_kwargs) == before

    def test_the_owner_reads_the_same_urls(self, client_for, victim, read_endpoint):
        """Control: the 404s above come from ownership, not from a wrong URL."""
        owner, url_kwargs = victim
        _, url, _ = read_endpoint
        assert client_for(owner).get(url.format(**url_kwargs)).status_code == 200

    def test_a_missing_object_is_the_same_404(self, client_for, victim, endpoint):
        owner, url_kwargs = victim
        method, url, body = endpoint
        client = client_for(owner)
        before = self.snapshot(url_kwargs)
        for name in [key for key in url_kwargs if f"{{{key}}}" in url]:
            missing_url = url.format(**{**url_kwargs, name: self.missing.get(name, MISSING_ID)})
            response = getattr(client, method)(missing_url, body, format="json")
            assert response.status_code == 404, (missing_url, response.content)
            assert response.json() == NOT_FOUND
        assert self.snapshot(url_kwargs) == before

    def test_lists_never_show_someone_elses_objects(self, client_for, other_client, victim, listing):
        owner, url_kwargs = victim
        url, key, value = listing
        expected = value.format(**url_kwargs)
        owners_view = client_for(owner).get(url.format(**url_kwargs)).json()["results"]
        assert expected in [str(item[key]) for item in owners_view]
        response = other_client.get(url.format(**url_kwargs))
        assert response.status_code == 200
        assert expected not in [str(item[key]) for item in response.json()["results"]]
