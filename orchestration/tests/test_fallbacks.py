"""Deployments and fallbacks: the real openai client against the fake server, one route of it per
deployment (``FakeLlmServer.route_url``), through the turn API and ``llm_call_staged``."""

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from django.conf import settings as django_settings

from orchestration.llm.registry import gateway_get
from orchestration.services.calls import CallLog, CallScope, llm_call_staged
from orchestration.testing.fake_server import Step
from orchestration.tests.llm.test_openai_provider import request
from usage import cooldown
from usage.cooldown import deployments_cooling
from usage.metering import Price
from usage.models import CreditAccount, LlmCallEvent, LlmDeployment, LlmModel
from usage.selectors import priced_models_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def routes(fake_llm, settings, monkeypatch):
    """``deepseek`` served by ``east`` (its own price) then ``west`` (billed at claude-haiku's price,
    another model id, another key); names unique per test, so no cool-down leaks between tests."""
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 3
    monkeypatch.setattr(cooldown, "_local", {})
    monkeypatch.setenv("EAST_KEY", "east-key")
    monkeypatch.setenv("WEST_KEY", "west-key")
    deepseek = LlmModel.objects.get(alias="deepseek")
    tag = uuid.uuid4().hex[:8]
    east = LlmDeployment.objects.create(
        model=deepseek,
        name=f"east-{tag}",
        position=0,
        base_url=fake_llm.route_url("east"),
        api_key_env="EAST_KEY",
    )
    west = LlmDeployment.objects.create(
        model=deepseek,
        name=f"west-{tag}",
        position=1,
        base_url=fake_llm.route_url("west"),
        api_key_env="WEST_KEY",
        provider_model="deepseek/deepseek-chat-west",
        price_model=LlmModel.objects.get(alias="claude-haiku"),
    )
    return east, west


def routes_hit(fake_llm) -> list[str]:
    return [r.path.split("/")[1] for r in fake_llm.requests]


def test_a_failing_deployment_falls_over_to_the_next_within_the_turn(turn_post, session, fake_llm, routes):
    east, west = routes
    fake_llm.fail(1, status=503, route="east")
    response = turn_post("@writer hello")
    assert response.status_code == 201
    assert routes_hit(fake_llm) == ["east", "west"]
    assert fake_llm.requests[1].headers["authorization"] == "Bearer west-key"
    assert fake_llm.requests[1].model == "deepseek/deepseek-chat-west"
    failed, served = LlmCallEvent.objects.filter(session_id=session.pk).order_by("created_at", "id")
    assert (failed.deployment, failed.status, failed.error_code) == (
        east.name,
        "failed",
        "provider_unavailable",
    )
    assert not failed.billable and failed.credits_burned == 0
    assert (served.deployment, served.status, served.billable) == (west.name, "succeeded", True)
    # Billed at the west deployment's price entry (claude-haiku: 0.80 / 4.00).
    expected = (
        Decimal(served.input_tokens) * Decimal("0.80") + served.output_tokens * Decimal("4.00")
    ) / 10**6
    assert served.cost_usd == expected and served.credits_burned == expected * 1000


@pytest.mark.parametrize(("status", "code"), [(400, "provider_bad_request"), (403, "provider_moderation")])
def test_a_request_at_fault_does_not_fall_over(turn_post, session, fake_llm, routes, status, code):
    fake_llm.enqueue(Step(status=status, route="east"))
    assert turn_post("@writer hello").status_code == 502
    assert routes_hit(fake_llm) == ["east"]
    [event] = LlmCallEvent.objects.filter(session_id=session.pk)
    assert event.error_code == code


def test_attempts_are_bounded(turn_post, session, fake_llm, routes, settings):
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 1
    fake_llm.fail(1, status=429, route="east")
    assert turn_post("@writer hello").status_code == 502
    assert routes_hit(fake_llm) == ["east"]


def staged_stream(user) -> tuple[str | None, list[str], CallLog]:
    deltas: list[str] = []
    log = CallLog()
    model = priced_models_get(aliases={"deepseek"})["deepseek"]
    reply = llm_call_staged(
        gateway=gateway_get(),
        request=request(),
        model=model,
        log=log,
        scope=CallScope(user_id=user.pk),
        on_delta=deltas.append,
    )
    return reply, deltas, log


@pytest.mark.parametrize(
    "broken",
    [Step(route="east", cut_after=0), Step(route="east", first_chunk_delay=1.5)],
    ids=["cut-before-first-delta", "slow-first-token"],
)
def test_a_stream_failing_before_its_first_delta_falls_over(user, fake_llm, routes, settings, broken):
    settings.LLM_STREAM_FIRST_TOKEN_TIMEOUT_SECONDS = 0.5
    fake_llm.enqueue(broken, Step(route="west", reply="From the west."))
    reply, deltas, log = staged_stream(user)
    assert reply == "From the west." and "".join(deltas) == "From the west."
    assert [e.status for e in log.events] == ["failed", "succeeded"]
    assert log.events[0].error_code in ("provider_stream_cut", "provider_timeout")


def test_a_stream_failing_after_its_first_delta_does_not_fall_over(user, fake_llm, routes):
    fake_llm.enqueue(Step(route="east", reply="one two three four", cut_after=2))
    reply, deltas, log = staged_stream(user)
    assert reply is None and "".join(deltas) == "one two"
    assert routes_hit(fake_llm) == ["east"]
    [event] = log.events
    assert event.error_code == "provider_stream_cut" and event.output_tokens > 0


def test_the_hold_covers_the_dearest_deployment(user, turn_post, session, fake_llm, routes):
    model = priced_models_get(aliases={"deepseek"})["deepseek"]
    assert model.price.input_usd_per_million == Decimal("0.30")
    assert (model.worst_price.input_usd_per_million, model.worst_price.output_usd_per_million) == (
        Decimal("0.80"),
        Decimal("4.00"),
    )
    CreditAccount.objects.filter(user=user).update(balance=Decimal("0.0001"))
    refused = turn_post("@writer hello")
    assert refused.status_code == 402
    required = Decimal(refused.json()["required_credits"])
    LlmDeployment.objects.filter(pk=routes[1].pk).update(price_model=None)  # west at deepseek's price
    cheaper = Decimal(turn_post("@writer hello").json()["required_credits"])
    assert required > cheaper * 4  # output 4.00 vs 0.85 per million dominates the worst case
    CreditAccount.objects.filter(user=user).update(balance=required)
    LlmDeployment.objects.filter(pk=routes[1].pk).update(
        price_model=LlmModel.objects.get(alias="claude-haiku")
    )
    fake_llm.fail(1, status=503, route="east")
    assert turn_post("@writer hello").status_code == 201  # served by the dearest, within its hold


def test_worst_price_of_an_alias_without_deployments_is_its_own_ceiling():
    model = priced_models_get(aliases={"qwen"})["qwen"]
    assert model.routes[0].name == "" and model.worst_price == Price(
        model.price.input_usd_per_million, model.price.output_usd_per_million, model.price.version_id
    )


# --- cool-down -------------------------------------------------------------------------------------
_CHILD = """
import json, sys, django
django.setup()
from usage.cooldown import deployment_failure_record, deployments_cooling
name, failures = sys.argv[1], int(sys.argv[2])
started = [deployment_failure_record(name) for _ in range(failures)]
print(json.dumps({"started": started, "cooling": deployments_cooling([name])}))
"""


def in_another_process(redis_location: str, name: str, failures: int) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pantheon.settings.base",
        "REDIS_URL": redis_location,
        "LLM_COOLDOWN_FAILURES": "2",
        "LLM_COOLDOWN_SECONDS": "30",
        # Failures count in fixed windows aligned on the clock: a day's, so both processes share one.
        "LLM_COOLDOWN_WINDOW_SECONDS": "86400",
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, name, str(failures)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=django_settings.BASE_DIR,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_a_cool_down_is_shared_by_processes_through_redis(settings, redis_url, monkeypatch):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    settings.LLM_COOLDOWN_FAILURES, settings.LLM_COOLDOWN_SECONDS = 2, 30
    monkeypatch.setattr(cooldown, "_local", {})
    name = f"shared-{uuid.uuid4().hex[:8]}"
    first = in_another_process(redis_url, name, 1)
    assert first == {"started": [False], "cooling": {}}
    assert deployments_cooling([name]) == {}
    # The second failure, in a second process, counts with the first: the deployment cools down…
    second = in_another_process(redis_url, name, 1)
    assert second["started"] == [True]
    # … for this process too, which never saw a failure of it (for what is left of the 30 s).
    assert 0 < deployments_cooling([name])[name] <= 30
