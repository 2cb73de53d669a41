"""The pool's warm-up and the connection given back before a model call (pantheon/db_connections.py),
on a pool of their own against the test database."""

import pytest
from django.db import connections, transaction

from pantheon import db_connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def pooled(monkeypatch):
    """A wrapper of the test database with a pool of 2 (the test settings run without one), as
    ``connections["pooled"]`` for the module under test; ``pooled(port=1)`` for one nobody answers."""
    made = []

    def make(port: str | None = None):
        default = connections["default"]
        options = {**default.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 2, "timeout": 5}}
        settings_dict = {**default.settings_dict, "OPTIONS": options}
        if port is not None:
            settings_dict["PORT"] = port
        wrapper = type(default)(settings_dict, alias=f"pooled{len(made)}")
        made.append(wrapper)
        connections[wrapper.alias] = wrapper  # for transaction.atomic(using=…), this thread only
        monkeypatch.setattr(db_connections, "connections", {"pooled": wrapper})
        return wrapper

    yield make
    for wrapper in made:
        wrapper.close()
        wrapper.close_pool()
        del connections[wrapper.alias]


def test_warm_up_opens_the_pool_with_a_connection_ready(pooled):
    wrapper = pooled()
    assert db_connections.pool_warm(alias="pooled") is True
    assert wrapper.pool.get_stats()["pool_available"] >= 1


def test_warm_up_without_a_database_gives_up_and_leaves_the_pool_usable(pooled):
    """psycopg_pool's own ``wait()`` closes a pool that is not full in time, for good: a worker
    started while the database was down would never serve. The warm-up leaves it opening."""
    wrapper = pooled(port="1")
    assert db_connections.pool_warm(alias="pooled", timeout=0.5) is False
    assert not wrapper.pool.closed


def test_warm_up_does_nothing_without_a_pool(monkeypatch):
    monkeypatch.setattr(db_connections, "connections", {"pooled": connections["default"]})
    assert db_connections.pool_warm(alias="pooled") is False


def test_a_connection_is_given_back_to_the_pool_outside_a_transaction_only(pooled):
    wrapper = pooled()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    with transaction.atomic(using=wrapper.alias):
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert db_connections.connection_release(alias="pooled") is False
        assert wrapper.connection is not None
    assert db_connections.connection_release(alias="pooled") is True
    assert wrapper.connection is None
    assert db_connections.connection_release(alias="pooled") is False  # nothing held any more


def test_nothing_is_given_back_without_a_pool(monkeypatch):
    default = connections["default"]
    default.ensure_connection()
    monkeypatch.setattr(db_connections, "connections", {"pooled": default})
    assert db_connections.connection_release(alias="pooled") is False
    assert default.connection is not None
