"""Django settings of the bench: production's (the bench passes the environment production needs,
on loopback: see ``stack.environment``), with the floor's route next to the real API."""

from pantheon.settings.production import *  # noqa: F403

ROOT_URLCONF = "tools.bench.urls"
