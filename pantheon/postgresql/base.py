"""Django's PostgreSQL backend (``ENGINE = "pantheon.postgresql"``) with two changes to its pool, and
psycopg's parse of a statement's placeholders kept for longer statements (below):

- A connection it hands out is checked without a round trip to the server
  (``pantheon.db_connections.pooled_check``). With ``CONN_HEALTH_CHECKS``, Django has psycopg_pool
  run an empty query on every handout: one round trip per request, and one more each time a turn
  takes a connection again after a model call.
- A request that has waited ``DATABASE_POOL_CHECK_AFTER_SECONDS`` for a connection makes sure the
  database answers at all before it waits the rest of ``DATABASE_POOL_TIMEOUT`` (30 s): a busy pool
  is worth waiting for, a database that is down is not. Down, a request fails in seconds (503
  ``database_unavailable``), not after half a minute.
"""

from django.conf import settings
from django.db.backends.postgresql import base
from psycopg import IsolationLevel
from psycopg import _queries as psycopg_queries
from psycopg_pool import PoolTimeout

from pantheon.db_connections import catalog_warm, database_answers_check, pooled_check

# psycopg parses a statement's ``%s`` placeholders with a regular expression and keeps the result
# (an LRU of 128) only for statements under 4,096 bytes and 50 parameters, a guard against ORM
# statements that never repeat. A turn's commit (orchestration/turns/store.py) is ~7,600 bytes and
# ~55 parameters, the same text every time: without this it is parsed again on every turn (≈ 0.3 ms
# of a worker's CPU). psycopg (pinned) reads both limits from its module at each execute; a test
# fails if a new version stops doing so.
STATEMENT_CACHE_MAX_BYTES = 16384
STATEMENT_CACHE_MAX_PARAMS = 128
psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = max(
    psycopg_queries.MAX_CACHED_STATEMENT_LENGTH, STATEMENT_CACHE_MAX_BYTES
)
psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(
    psycopg_queries.MAX_CACHED_STATEMENT_PARAMS, STATEMENT_CACHE_MAX_PARAMS
)


class DatabaseWrapper(base.DatabaseWrapper):
    def _configure_connection(self, connection):
        """Django's set-up of a new connection (the pool calls it in its own thread, before any request
        has the connection), then, for the pool's first connections, the catalog warmed: PostgreSQL
        loads a table's and its indexes' entries into the backend's caches the first time a statement
        names them, a few milliseconds the first turn on a new connection would otherwise pay."""
        commit = super()._configure_connection(connection)
        pool = self.pool
        # Only the pool's first connections (and those replacing them): one opened because a burst
        # wants more would make PostgreSQL plan every table when it is busiest.
        if pool is not None and pool.get_stats().get("pool_size", 0) <= pool.min_size:
            catalog_warm(connection)
        return commit

    def get_new_connection(self, conn_params):
        pool = self.pool
        if pool is None or "isolation_level" in self.settings_dict["OPTIONS"]:
            return super().get_new_connection(conn_params)
        self.isolation_level = IsolationLevel.READ_COMMITTED  # Django's own default, as it sets it
        pool.open()
        try:
            return pool.getconn(timeout=settings.DATABASE_POOL_CHECK_AFTER_SECONDS)
        except PoolTimeout:
            database_answers_check(self)  # raises when the database does not answer
        return pool.getconn(timeout=max(pool.timeout - settings.DATABASE_POOL_CHECK_AFTER_SECONDS, 0.1))

    @property
    def pool(self):
        pool = super().pool
        if pool is not None and self.settings_dict["CONN_HEALTH_CHECKS"]:
            # psycopg_pool (pinned) keeps the check it calls on each handout here; Django passes
            # ConnectionPool.check_connection with no way to choose another.
            pool._check = pooled_check
        return pool
