"""llm_check: the provider, per purpose."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestration.testing.fake_server import Step


@pytest.mark.django_db
def test_llm_check_passes_on_the_fake_provider(fake_llm):
    out = StringIO()
    call_command("llm_check", "--models", "deepseek,qwen", stdout=out)
    report = out.getvalue()
    assert report.count("PASS") == 6 and "deepseek routing" in report and "qwen summary" in report
    assert len(fake_llm.requests) == 6


@pytest.mark.django_db
def test_llm_check_fails_on_provider_errors_and_unknown_models(fake_llm):
    fake_llm.enqueue(Step(status=401))
    out = StringIO()
    with pytest.raises(CommandError, match=r"^2 provider checks failed$"):
        call_command("llm_check", "--models", "deepseek,nosuchmodel", stdout=out)
    assert "FAIL deepseek reply: provider_auth_error" in out.getvalue()
    assert "FAIL nosuchmodel: not an active catalog model" in out.getvalue()


@pytest.mark.django_db
def test_llm_check_says_what_it_calls_before_each_call(fake_llm):
    out = StringIO()
    call_command("llm_check", "--models", "deepseek", stdout=out)
    lines = out.getvalue().splitlines()
    assert "each call may take up to" in lines[0]
    for purpose in ("reply", "routing", "summary"):
        before = next(
            i for i, line in enumerate(lines) if line.startswith(f"…    deepseek {purpose}: calling")
        )
        after = next(i for i, line in enumerate(lines) if f"deepseek {purpose}:" in line and "PASS" in line)
        assert before < after, purpose


@pytest.mark.django_db
def test_llm_check_checks_every_deployment_and_says_which_answered(fake_llm, monkeypatch):
    from usage.models import LlmDeployment, LlmModel

    monkeypatch.setenv("EAST_KEY", "east-key")
    deepseek = LlmModel.objects.get(alias="deepseek")
    LlmDeployment.objects.create(
        model=deepseek, name="east", position=0, base_url=fake_llm.route_url("east"), api_key_env="EAST_KEY"
    )
    LlmDeployment.objects.create(
        model=deepseek, name="west", position=1, base_url=fake_llm.route_url("west"), api_key_env="WEST_KEY"
    )
    fake_llm.fail(3, status=503, route="east")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("llm_check", "--models", "deepseek,qwen", stdout=out)
    report = out.getvalue()
    assert "FAIL deepseek@east reply: provider_unavailable" in report
    assert "FAIL deepseek@west: deployment_misconfigured WEST_KEY is not set" in report
    assert "answered: qwen; did not: deepseek@east, deepseek@west" in report
    assert {r.path.split("/")[1] for r in fake_llm.requests} == {"east", "v1"}
