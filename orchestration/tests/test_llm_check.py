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
    with pytest.raises(CommandError):
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
