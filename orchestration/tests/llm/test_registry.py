"""Which gateway the settings select, and the deadline of one call."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from orchestration.llm.offline import OfflineGateway
from orchestration.llm.openai_provider import OpenAIGateway
from orchestration.llm.registry import (
    gateway_call_deadline_seconds,
    gateway_call_quiet_bound_seconds,
    gateway_get,
    gateway_stream_first_chunk_deadline_seconds,
    gateway_stream_idle_bound_seconds,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def openai_settings(settings):
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    settings.LLM_API_KEY = "k"
    settings.LLM_TIMEOUT_SECONDS = 12.5
    settings.LLM_MAX_RETRIES = 3
    settings.LLM_HTTP_REFERER = "https://pantheon.example"
    settings.LLM_APP_TITLE = "Pantheon staging"
    settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = None
    settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 45.0
    return settings


def gateway_in_a_fresh_process(**environ: str) -> str:
    """The class and base URL ``gateway_get()`` returns under the base settings and only ``environ``."""
    if (ROOT / ".env").exists():
        pytest.skip("a local .env would leak into the bare environment")
    script = (
        "import django; django.setup()\n"
        "from orchestration.llm.registry import gateway_get\n"
        "g = gateway_get(); print(type(g).__name__, getattr(getattr(g, 'client', None), 'base_url', '-'))"
    )
    bare = {"PATH": os.environ["PATH"]}
    env = {**bare, "DJANGO_SETTINGS_MODULE": "pantheon.settings.base", **environ}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.integration
def test_offline_is_the_default_with_no_environment():
    assert gateway_in_a_fresh_process() == "OfflineGateway -"


@pytest.mark.integration
def test_openrouter_key_alone_selects_openai_against_openrouter():
    answer = gateway_in_a_fresh_process(OPENROUTER_API_KEY="sk-or-test")
    assert answer == "OpenAIGateway https://openrouter.ai/api/v1/"


def test_test_settings_use_the_offline_gateway():
    assert isinstance(gateway_get(), OfflineGateway)


def test_openai_when_configured_with_timeout_retries_and_attribution(openai_settings):
    gateway = gateway_get()
    assert isinstance(gateway, OpenAIGateway)
    assert str(gateway.client.base_url) == "http://127.0.0.1:9/v1/"
    assert gateway.client.timeout == 12.5
    assert gateway.client.max_retries == 3
    assert gateway.client.default_headers["HTTP-Referer"] == "https://pantheon.example"
    assert gateway.client.default_headers["X-Title"] == "Pantheon staging"
    assert gateway.stream_first_token_timeout == 12.5  # unset: the call timeout
    assert gateway.stream_idle_timeout == 45.0


def test_stream_timeouts_come_from_their_settings(openai_settings):
    openai_settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = 8.0
    openai_settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 20.0
    gateway = gateway_get()
    assert (gateway.stream_first_token_timeout, gateway.stream_idle_timeout) == (8.0, 20.0)


@pytest.mark.parametrize(("first", "idle"), [(0.0, 30.0), (-1.0, 30.0), (None, 0.0)])
def test_stream_timeouts_must_be_positive(openai_settings, first, idle):
    openai_settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = first
    openai_settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = idle
    with pytest.raises(ImproperlyConfigured, match="LLM_STREAM_"):
        gateway_get()


def test_one_gateway_per_configuration(openai_settings):
    first = gateway_get()
    assert gateway_get() is first
    openai_settings.LLM_TIMEOUT_SECONDS = 3.0
    assert gateway_get() is not first and gateway_get().client.timeout == 3.0


@pytest.mark.parametrize(
    ("base_url", "api_key", "missing"), [("", "k", "LLM_BASE_URL"), ("http://x/v1", "", "LLM_API_KEY")]
)
def test_incomplete_openai_configuration_fails_loudly(openai_settings, base_url, api_key, missing):
    openai_settings.LLM_BASE_URL, openai_settings.LLM_API_KEY = base_url, api_key
    with pytest.raises(ImproperlyConfigured, match=missing):
        gateway_get()


def test_unknown_provider_fails_loudly(settings):
    settings.LLM_PROVIDER = "openia"
    with pytest.raises(ImproperlyConfigured, match="openia"):
        gateway_get()


@pytest.mark.parametrize(
    ("timeout", "retries", "deployments", "deadline"),
    [(30.0, 1, 1, 62.0), (10.0, 2, 1, 34.0), (5.0, 0, 1, 5.0), (30.0, 1, 3, 186.0)],
)
def test_call_deadline_is_every_attempt_plus_capped_waits_on_each_deployment(
    settings, timeout, retries, deployments, deadline
):
    settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES = timeout, retries
    settings.LLM_FALLBACK_MAX_ATTEMPTS = deployments
    assert gateway_call_deadline_seconds() == deadline


@pytest.mark.parametrize(
    ("first_token", "timeout", "retries", "deadline"),
    [(None, 30.0, 1, 62.0), (10.0, 30.0, 1, 22.0), (5.0, 30.0, 0, 5.0)],
)
def test_stream_first_chunk_deadline_is_every_attempt_plus_capped_waits(
    settings, first_token, timeout, retries, deadline
):
    settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = first_token
    settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES = timeout, retries
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 1
    assert gateway_stream_first_chunk_deadline_seconds() == deadline
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 2
    assert gateway_stream_first_chunk_deadline_seconds() == 2 * deadline


def test_stream_idle_bound_is_the_idle_timeout(settings):
    settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 17.0
    assert gateway_stream_idle_bound_seconds() == 17.0


def test_system_check_reports_an_incomplete_provider_configuration(settings):
    from orchestration.checks import llm_provider_configured

    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY = "openai", "", ""
    [error] = llm_provider_configured()
    assert error.id == "pantheon.E001" and "LLM_BASE_URL" in error.msg
    settings.LLM_PROVIDER = "offline"
    assert llm_provider_configured() == []


@pytest.mark.parametrize(
    ("first_token", "idle", "bound"),
    [(None, 3.0, 5.0), (100.0, 3.0, 100.0), (None, 40.0, 40.0)],
)
def test_a_calls_quiet_bound_covers_a_plain_call_and_both_stream_bounds(settings, first_token, idle, bound):
    """What sizes a turn's session claim: a stream allowed to wait longer than a plain call's
    deadline keeps the claim that long too."""
    settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES, settings.LLM_FALLBACK_MAX_ATTEMPTS = 5.0, 0, 1
    settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS, settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = (
        first_token,
        idle,
    )
    assert gateway_call_quiet_bound_seconds() == bound
