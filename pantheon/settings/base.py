"""Pantheon settings: everything is read from the environment (see .env.example).

With no environment at all the app runs on the embedded default: the embedded PostgreSQL under var/
(started by ``make run``, pantheon/local_postgres.py), Celery tasks executed eagerly, and the offline
LLM provider.
"""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from pantheon.local_postgres import running_url
from pantheon.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))

# --- Django core -------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env(
    "DJANGO_SECRET_KEY",
    default="embedded-default-insecure-key-set-DJANGO_SECRET_KEY-in-production",
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only for the migration that hashed its plaintext tokens
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "usage",
    "rooms",
    "sessions_app",
    "orchestration",
    "openai_compat",
    "ops",
    "pantheon.telemetry",
]

MIDDLEWARE = [
    "pantheon.api.gating.WorkGateMiddleware",  # first: a burst of turns waits here (pantheon/work_gate.py)
    "pantheon.api.request_context.RequestContextMiddleware",
    "pantheon.api.timing.ServerTimingMiddleware",
    "pantheon.api.input_guard.InputGuardMiddleware",
    "pantheon.api.exceptions.ApplicationErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pantheon.urls"
WSGI_APPLICATION = "pantheon.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- Database ----------------------------------------------------------------------------------
def postgres_options() -> dict:
    """psycopg binds parameters on the server and prepares a statement the second time a connection
    runs it: a turn's statements are the same every time, and planning them again (their CTEs, the
    history window) would cost each turn more than running them. Behind a transaction-pooling proxy
    (pgbouncer < 1.21) prepared statements break: set DATABASE_PREPARE_THRESHOLD= (empty) to turn
    them off."""
    threshold = env("DATABASE_PREPARE_THRESHOLD", default="2")
    return {
        "server_side_binding": True,
        "prepare_threshold": int(threshold) if threshold else None,
    }


# PostgreSQL, the only engine (psycopg 3): DATABASE_URL, else the embedded server of ``make run`` when
# it runs (var/postgres), else the local server's default address.
DATABASE_URL = (
    env("DATABASE_URL", default="") or running_url() or "postgres://postgres@127.0.0.1:5432/pantheon"
)
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# Django's backend, whose pool checks a connection it hands out without a round trip (pantheon/postgresql).
DATABASE_ENGINE = "pantheon.postgresql"
DATABASES["default"]["ENGINE"] = DATABASE_ENGINE
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = postgres_options()
# A pool of connections per process (psycopg_pool), shared by its requests and tasks, which give
# theirs back before every model call (pantheon/db_connections.py): the deployment's connections
# are processes × this, whatever the turns in flight (docs/runbook.md, "Capacity"). 0: no pool, a
# persistent connection per thread (or greenlet) instead.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=8)
if DATABASE_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": min(2, DATABASE_POOL_MAX_SIZE),
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
    }
# A request that waited this long for a pooled connection makes sure the database answers before it
# waits longer: a database that is down answers 503 database_unavailable (Retry-After below) in
# seconds, not after DATABASE_POOL_TIMEOUT (pantheon/postgresql).
DATABASE_POOL_CHECK_AFTER_SECONDS = env.float("DATABASE_POOL_CHECK_AFTER_SECONDS", default=2.0)
DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS = env.int("DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS", default=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Usernames are unique regardless of case, and a login may give one in any case.
AUTHENTICATION_BACKENDS = ["usage.backends.CaseInsensitiveUsernameBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "/api-auth/login/"

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pantheon.api.authentication.BearerTokenAuthentication",
        "pantheon.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "pantheon.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "pantheon.api.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "pantheon.api.pagination.DefaultPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pantheon.api.exceptions.exception_handler",
    # DRF's scopes and rates, counted atomically (pantheon.limits), per process if Redis is down.
    "DEFAULT_THROTTLE_CLASSES": [
        "pantheon.api.throttling.AnonRateThrottle",
        "pantheon.api.throttling.UserRateThrottle",
        "pantheon.api.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/min"),
        "user": env("API_THROTTLE_USER", default="600/min"),
        "turns": env("API_THROTTLE_TURNS", default="60/min"),
        "auth": env("API_THROTTLE_AUTH", default="20/min"),
        "register": env("API_THROTTLE_REGISTER", default="10/hour"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# API tokens (django-rest-knox, usage.ApiToken): one per client or device, stored as a SHA-512
# digest. A token expires API_TOKEN_TTL_DAYS after its last use (use pushes the expiry on, at most
# once a minute) and API_TOKEN_MAX_AGE_DAYS after it was issued whatever its use.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)
API_TOKEN_MAX_AGE_DAYS = env.int("API_TOKEN_MAX_AGE_DAYS", default=365)
KNOX_TOKEN_MODEL = "usage.ApiToken"  # noqa: S105 (a model, not a secret)
# knox's own migrations create its AuthToken table even when the model is swapped for ours: none
# of them is run (the table would hold nothing, and would block the test database's flush).
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS),
    "AUTO_REFRESH": True,
    "AUTO_REFRESH_MAX_TTL": timedelta(days=API_TOKEN_MAX_AGE_DAYS),
    "MIN_REFRESH_INTERVAL": 60,
    "AUTH_HEADER_PREFIX": "Bearer",
}
# A JSON body nested deeper than this is refused (400 invalid); the API's bodies nest a few levels.
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
# The OpenAI-compatible endpoint's largest body (413 above): a chat client resends the whole
# conversation with every message, so it is far above Django's 2.5 MB (DATA_UPLOAD_MAX_MEMORY_SIZE,
# which still bounds the native API). 32 MiB holds ~100,000 messages of 300 characters.
OPENAI_REQUEST_MAX_BYTES = env.int("OPENAI_REQUEST_MAX_BYTES", default=32 * 1024 * 1024)

SPECTACULAR_SETTINGS = {
    "TITLE": "Pantheon API",
    "DESCRIPTION": "Multi-agent LLM chat rooms: rooms of agents, sessions, routed turns, metered usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come with the app (static files), so /api/docs/ works with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pantheon.api.schema.decimal_examples",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TurnStatusEnum": "sessions_app.models.Turn.Status",
        "UsageEventStatusEnum": "usage.models.LlmCallEvent.Status",
    },
}

# Failed logins (token endpoint, browsable API and admin forms alike: usage.services.logins) are
# counted per username and per client address in a window; from the limit on, each failure locks
# the name (address) for the base delay, doubled per failure past the limit, at most the maximum.
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
LOGIN_LOCKOUT_BASE_SECONDS = env.int("LOGIN_LOCKOUT_BASE_SECONDS", default=30)
LOGIN_LOCKOUT_MAX_SECONDS = env.int("LOGIN_LOCKOUT_MAX_SECONDS", default=900)

# The reverse proxies in front of the app that append the client's address to X-Forwarded-For: the
# client is that many entries from the right. 0: the header is ignored (pantheon.client).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Cache (rate limits, slots) ----------------------------------------------------------------
# Optional at run time: when Redis cannot be reached, limits count per process (pantheon.limits).
# Short socket timeouts so an unreachable Redis costs a request little, and after a failure the
# cache is left alone for CACHE_RETRY_SECONDS.
REDIS_URL = env("REDIS_URL", default="")
CACHE_SOCKET_TIMEOUT_SECONDS = env.float("CACHE_SOCKET_TIMEOUT_SECONDS", default=0.5)
CACHE_RETRY_SECONDS = env.float("CACHE_RETRY_SECONDS", default=5.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": CACHE_SOCKET_TIMEOUT_SECONDS,
                "socket_timeout": CACHE_SOCKET_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ------------------------------------------------------------------------------------
# Eager (in-process) when no broker is configured: the embedded default needs no Redis.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep LOGGING (the ids in every line, LOG_FORMAT)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_BEAT_SCHEDULE = {
    # Summaries that were due but never produced (broker down, worker killed) are found and made.
    "summaries-due-sweep": {
        "task": "orchestration.tasks.summaries_due_sweep",
        "schedule": env.int("SUMMARY_SWEEP_INTERVAL_SECONDS", default=300),
    },
    # Holds left by work that died (a killed web worker, a lost summary task) are freed.
    "credit-holds-sweep": {
        "task": "usage.tasks.credit_holds_sweep",
        "schedule": env.int("HOLDS_SWEEP_INTERVAL_SECONDS", default=60),
    },
    "usage-reconcile": {
        "task": "usage.tasks.usage_reconcile",
        "schedule": env.int("RECONCILE_INTERVAL_SECONDS", default=3600),
    },
}

# --- Accounts and credits ----------------------------------------------------------------------
REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=True)
CREDITS_PER_USD = Decimal(env.str("CREDITS_PER_USD", default="1000"))
# Accounts an operator opens (admin, commands) get CREDITS_OPENING_BALANCE; accounts made through
# POST /auth/register get REGISTRATION_OPENING_CREDITS, so open registration cannot farm credits.
CREDITS_OPENING_BALANCE = Decimal(env.str("CREDITS_OPENING_BALANCE", default="1000"))
REGISTRATION_OPENING_CREDITS = Decimal(env.str("REGISTRATION_OPENING_CREDITS", default="100"))
# Budgets (docs/budgets.md): their calendar periods (day, week from Monday, month) begin at midnight here.
BUDGET_TIME_ZONE = env.str("BUDGET_TIME_ZONE", default="UTC")
# A budget warns once per period when spent + held reaches this share of its limit.
BUDGET_SOFT_LIMIT_SHARE = Decimal(env.str("BUDGET_SOFT_LIMIT_SHARE", default="0.8"))
# Optional: POSTed a signed JSON notice when a budget reaches its soft limit (Celery, with retries).
BUDGET_WEBHOOK_URL = env.str("BUDGET_WEBHOOK_URL", default="")
BUDGET_WEBHOOK_SECRET = env.str("BUDGET_WEBHOOK_SECRET", default="")
if BUDGET_WEBHOOK_URL and not BUDGET_WEBHOOK_SECRET:
    raise ImproperlyConfigured("BUDGET_WEBHOOK_URL needs BUDGET_WEBHOOK_SECRET (the notices are signed).")

# --- LLM provider ------------------------------------------------------------------------------
# "offline" (built-in deterministic provider) unless a key is configured.
OPENROUTER_API_KEY = env("OPENROUTER_API_KEY", default="")
LLM_BASE_URL = env("LLM_BASE_URL", default="")
LLM_API_KEY = env("LLM_API_KEY", default="")
if LLM_BASE_URL or LLM_API_KEY:
    _default_provider = "openai"
elif OPENROUTER_API_KEY:
    _default_provider = "openai"
    LLM_BASE_URL = "https://openrouter.ai/api/v1"
    LLM_API_KEY = OPENROUTER_API_KEY
else:
    _default_provider = "offline"
LLM_PROVIDER = env("LLM_PROVIDER", default=_default_provider)
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=1)
# A streamed call is bounded by its first chunk (unset: LLM_TIMEOUT_SECONDS) and by the silence
# between two chunks, never by its whole length (docs/streaming.md).
LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = env.float("LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS", default=None)
LLM_STREAM_IDLE_TIMEOUT_SECONDS = env.float("LLM_STREAM_IDLE_TIMEOUT_SECONDS", default=30.0)
LLM_HTTP_REFERER = env("LLM_HTTP_REFERER", default="https://pantheon.local")
LLM_APP_TITLE = env("LLM_APP_TITLE", default="Pantheon")
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.7)
# Fallbacks (docs/runbook.md, "Deployments and fallbacks"): a call goes to at most this many of its
# alias's deployments; a deployment that fails LLM_COOLDOWN_FAILURES times within
# LLM_COOLDOWN_WINDOW_SECONDS is skipped for LLM_COOLDOWN_SECONDS (shared through the cache).
LLM_FALLBACK_MAX_ATTEMPTS = env.int("LLM_FALLBACK_MAX_ATTEMPTS", default=2)
LLM_COOLDOWN_FAILURES = env.int("LLM_COOLDOWN_FAILURES", default=3)
LLM_COOLDOWN_WINDOW_SECONDS = env.int("LLM_COOLDOWN_WINDOW_SECONDS", default=60)
LLM_COOLDOWN_SECONDS = env.int("LLM_COOLDOWN_SECONDS", default=60)

# --- Reconciliation ---------------------------------------------------------------------------
RECONCILE_INTERVAL_SECONDS = env.int("RECONCILE_INTERVAL_SECONDS", default=3600)
RECONCILE_LOOKBACK_HOURS = env.int("RECONCILE_LOOKBACK_HOURS", default=48)
RECONCILE_DRIFT_TOLERANCE_RATIO = Decimal(env.str("RECONCILE_DRIFT_TOLERANCE_RATIO", default="0.05"))
RECONCILE_DRIFT_TOLERANCE_USD = Decimal(env.str("RECONCILE_DRIFT_TOLERANCE_USD", default="0.000001"))
# Token calibration per catalog model (usage/calibration.py): reconciliation learns the provider's
# native input count ÷ the local one, smoothed (a new call weighs TOKEN_CALIBRATION_SMOOTHING); holds
# and context budgets use it once TOKEN_CALIBRATION_MIN_SAMPLES calls were learned from, clamped to
# [TOKEN_CALIBRATION_MIN, TOKEN_CALIBRATION_MAX]. MIN = MAX = 1 turns it off.
TOKEN_CALIBRATION_MIN = Decimal(env.str("TOKEN_CALIBRATION_MIN", default="0.5"))
TOKEN_CALIBRATION_MAX = Decimal(env.str("TOKEN_CALIBRATION_MAX", default="2.0"))
TOKEN_CALIBRATION_MIN_SAMPLES = env.int("TOKEN_CALIBRATION_MIN_SAMPLES", default=20)
TOKEN_CALIBRATION_SMOOTHING = Decimal(env.str("TOKEN_CALIBRATION_SMOOTHING", default="0.1"))
if not (0 < TOKEN_CALIBRATION_MIN <= TOKEN_CALIBRATION_MAX and 0 < TOKEN_CALIBRATION_SMOOTHING <= 1):
    raise ImproperlyConfigured(
        "TOKEN_CALIBRATION_MIN must be above 0 and at most TOKEN_CALIBRATION_MAX; "
        "TOKEN_CALIBRATION_SMOOTHING within (0, 1]."
    )

# --- Turns -------------------------------------------------------------------------------------
ORCHESTRATOR_MANAGER_MODEL_ALIAS = env("ORCHESTRATOR_MANAGER_MODEL_ALIAS", default="deepseek")
SUMMARY_MODEL_ALIAS = env("SUMMARY_MODEL_ALIAS", default=ORCHESTRATOR_MANAGER_MODEL_ALIAS)
SUMMARY_SWEEP_INTERVAL_SECONDS = env.int("SUMMARY_SWEEP_INTERVAL_SECONDS", default=300)
# A turn waits this long for a busy session (the turn before it) before answering 409 turn_conflict.
TURN_CLAIM_WAIT_SECONDS = env.float("TURN_CLAIM_WAIT_SECONDS", default=5.0)
# A turn's claim on its session lasts its calls' worst case plus this margin: the bound within which a
# session whose web worker died is usable again.
TURN_CLAIM_MARGIN_SECONDS = env.float("TURN_CLAIM_MARGIN_SECONDS", default=30.0)
# At most this many turns of one user run or wait at once; beyond, 429 at once.
TURNS_IN_FLIGHT_PER_USER = env.int("TURNS_IN_FLIGHT_PER_USER", default=4)
# At most this many turns run at once in one web process; beyond, 503 server_busy at once, nothing held
# (orchestration/capacity.py). 0 = no cap. Sized in docs/runbook.md ("Capacity").
TURNS_IN_FLIGHT_PER_PROCESS = env.int("TURNS_IN_FLIGHT_PER_PROCESS", default=400)
# How many turns of one web process do their CPU work at once (pantheon/work_gate.py); the others
# wait for their place instead of crowding the event loop ahead of /health and every other request.
# Unset: the pool's size less 2 (at least 1); 0: no gate. Off without a pool.
TURN_WORK_CONCURRENCY = env.int("TURN_WORK_CONCURRENCY", default=None)
SERVER_BUSY_RETRY_AFTER_SECONDS = env.int("SERVER_BUSY_RETRY_AFTER_SECONDS", default=5)
# A summary's credit hold is freed by the sweep if the summary is not made within this time.
SUMMARY_HOLD_SECONDS = env.int("SUMMARY_HOLD_SECONDS", default=3600)
HOLDS_SWEEP_INTERVAL_SECONDS = env.int("HOLDS_SWEEP_INTERVAL_SECONDS", default=60)
# A streamed turn sends a comment line after this many seconds of silence (proxies close idle streams).
TURN_STREAM_KEEPALIVE_SECONDS = env.float("TURN_STREAM_KEEPALIVE_SECONDS", default=15.0)
TURN_CONFLICT_RETRY_AFTER_SECONDS = env.int("TURN_CONFLICT_RETRY_AFTER_SECONDS", default=2)
TURN_USER_INPUT_MAX_CHARS = env.int("TURN_USER_INPUT_MAX_CHARS", default=100_000)
# A discussion (docs/discussions.md) without a credit cap may run at most this many steps (422 beyond).
DISCUSSION_MAX_STEPS = env.int("DISCUSSION_MAX_STEPS", default=12)
# The manager's calls of a discussion are recorded and unbilled unless this is true.
DISCUSSION_BILL_MANAGER = env.bool("DISCUSSION_BILL_MANAGER", default=False)

# --- Context budget ----------------------------------------------------------------------------
CONTEXT_WINDOW_TOKENS = env.int("CONTEXT_WINDOW_TOKENS", default=8192)
# The largest window an agent may be given (its own context_window_tokens), whatever its model's.
CONTEXT_WINDOW_MAX_TOKENS = env.int("CONTEXT_WINDOW_MAX_TOKENS", default=131_072)
CONTEXT_MAX_OUTPUT_TOKENS = env.int("CONTEXT_MAX_OUTPUT_TOKENS", default=2048)
CONTEXT_SUMMARY_TRIGGER_RATIO = env.float("CONTEXT_SUMMARY_TRIGGER_RATIO", default=0.70)
# ... and only when the turns a summary would replace hold at least this share of the budget.
CONTEXT_SUMMARY_MIN_HISTORY_RATIO = env.float("CONTEXT_SUMMARY_MIN_HISTORY_RATIO", default=0.25)
CONTEXT_PRUNE_TRIGGER_RATIO = env.float("CONTEXT_PRUNE_TRIGGER_RATIO", default=0.90)
CONTEXT_MANDATORY_SUMMARY_TURN = env.int("CONTEXT_MANDATORY_SUMMARY_TURN", default=8)
CONTEXT_RECENT_TURNS_TO_KEEP = env.int("CONTEXT_RECENT_TURNS_TO_KEEP", default=4)

# --- Metrics -----------------------------------------------------------------------------------
# GET /metrics (Prometheus) answers only a scraper sending ``Authorization: Bearer <METRICS_TOKEN>``;
# unset, the endpoint does not exist. Across processes set PROMETHEUS_MULTIPROC_DIR (runbook).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# --- Logging -----------------------------------------------------------------------------------
# Every line carries the request, user, session and turn ids; ``text`` (key=value) for a terminal,
# ``json`` (one object per line) for a log pipeline: production settings default to it.
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
