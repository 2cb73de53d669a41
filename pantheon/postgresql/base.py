"""Django's PostgreSQL backend (``ENGINE = "pantheon.postgresql"``), whose connection pool checks a
connection it hands out without a round trip to the server (``pantheon.db_connections.pooled_check``).

With ``CONN_HEALTH_CHECKS``, Django has psycopg_pool run an empty query on every connection it hands
out: one round trip per request, and one more each time a turn takes a connection again after a model
call. The check here asks the server only when the idle connection shows a sign of trouble.
"""

from django.db.backends.postgresql import base

from pantheon.db_connections import pooled_check


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        if pool is not None and self.settings_dict["CONN_HEALTH_CHECKS"]:
            # psycopg_pool (pinned) keeps the check it calls on each handout here; Django passes
            # ConnectionPool.check_connection with no way to choose another.
            pool._check = pooled_check
        return pool
