"""Test overrides. The suite runs on PostgreSQL: DATABASE_URL, or the local server on 127.0.0.1:5432.
``make test`` starts the embedded PostgreSQL (pantheon/local_postgres.py) when DATABASE_URL is unset
and nothing answers there, so a laptop with no server runs the real suite too."""

import sys

from .base import *  # noqa: F403
from .base import DATABASE_ENGINE, env, postgres_options

TEST_DATABASE_URL = env("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/pantheon")


def _postgres_reachable(url: str) -> bool:
    import psycopg

    cfg = env.db_url_config(url)
    try:
        psycopg.connect(
            host=cfg.get("HOST") or "127.0.0.1",
            port=cfg.get("PORT") or 5432,
            user=cfg.get("USER") or "postgres",
            password=cfg.get("PASSWORD") or None,
            dbname="postgres",
            connect_timeout=2,
        ).close()
    except Exception:
        return False
    return True


if not _postgres_reachable(TEST_DATABASE_URL):
    sys.exit(
        f"PostgreSQL is not reachable at {TEST_DATABASE_URL}: run the suite with `make test` (it starts the "
        "embedded PostgreSQL when no server answers on 127.0.0.1:5432) or set DATABASE_URL."
    )
DATABASES = {
    "default": {
        **env.db_url_config(TEST_DATABASE_URL),
        "ENGINE": DATABASE_ENGINE,
        "OPTIONS": postgres_options(),
    }
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"  # never a real broker by accident; the worker tests set Redis
LLM_PROVIDER = "offline"
LLM_TIMEOUT_SECONDS = 5.0
LLM_STREAM_IDLE_TIMEOUT_SECONDS = 5.0
LLM_MAX_RETRIES = 0
TURN_CLAIM_WAIT_SECONDS = 20.0
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
