"""Test overrides. PostgreSQL is the suite's database: DATABASE_URL, or the local server on
127.0.0.1:5432. Outside CI, a laptop without PostgreSQL falls back to SQLite with a warning; with
CI=true a missing PostgreSQL is an error."""

import os
import sys
import warnings

from .base import *  # noqa: F403
from .base import env, postgres_options

TEST_DATABASE_URL = env("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/pantheon")
IN_CI = env.bool("CI", default=False)


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


if _postgres_reachable(TEST_DATABASE_URL):
    DATABASES = {"default": {**env.db_url_config(TEST_DATABASE_URL), "OPTIONS": postgres_options()}}
elif IN_CI:
    sys.exit(f"CI=true but PostgreSQL is not reachable at {TEST_DATABASE_URL}")
else:
    warnings.warn("PostgreSQL unreachable: running the suite on SQLite (laptop fallback)", stacklevel=1)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            "TEST": {"NAME": os.path.join(str(VAR_DIR), "test.sqlite3")},  # noqa: F405
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
