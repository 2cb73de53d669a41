"""Production overrides: secure cookies, HSTS, TLS redirect; the secret key, the allowed hosts and
PostgreSQL are mandatory (a missing one fails at start-up, never falls back to the embedded default)."""

from django.core.exceptions import ImproperlyConfigured

from pantheon.logging import logging_config

from .base import *  # noqa: F403
from .base import LOG_LEVEL, env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not env("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "Set DATABASE_URL: production runs on a PostgreSQL server of its own, never the embedded one."
    )

# JSON lines unless told otherwise: production logs go to a pipeline, not a terminal.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Load balancers, container health checks and the metrics scraper speak http inside the network.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
