"""The catalog in the admin: each model's deployments with their cool-downs, and its token
calibration, on the list and on the model's page."""

import re
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from usage import cooldown
from usage.cooldown import deployment_failure_record
from usage.models import LlmDeployment, LlmModel, TokenCalibration
from usage.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/usage/llmmodel/"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def deployments(settings, monkeypatch):
    """``deepseek`` served by ``east`` (cooling down), ``west`` (one recent failure) and ``north``
    (inactive); names unique per test."""
    settings.LLM_COOLDOWN_FAILURES, settings.LLM_COOLDOWN_SECONDS = 2, 30
    settings.LLM_COOLDOWN_WINDOW_SECONDS = 86400
    monkeypatch.setattr(cooldown, "_local", {})
    deepseek = LlmModel.objects.get(alias="deepseek")
    tag = uuid.uuid4().hex[:8]
    names = {key: f"{key}-{tag}" for key in ("east", "west", "north")}
    for position, key in enumerate(names):
        LlmDeployment.objects.create(
            model=deepseek, name=names[key], position=position, is_active=key != "north"
        )
    for _ in range(2):
        deployment_failure_record(names["east"])
    deployment_failure_record(names["west"])
    return names


def test_the_catalog_list_shows_which_deployments_cool_down_and_each_token_ratio(
    staff_client, deployments, settings
):
    settings.TOKEN_CALIBRATION_MIN_SAMPLES = 20
    TokenCalibration.objects.create(
        model=LlmModel.objects.get(alias="deepseek"), ratio=Decimal("1.25"), samples=40
    )
    TokenCalibration.objects.create(model=LlmModel.objects.get(alias="qwen"), ratio=Decimal("1.5"), samples=3)
    page = staff_client.get(URL).content.decode()
    east, west, north = deployments.values()
    assert re.search(rf"{east} \(cooling (\d+(\.\d)?) s, 2 recent failures\)", page)
    assert f"{west} (ok, 1 recent failure)" in page
    assert north not in page  # inactive: never tried
    assert "×1.250" in page  # deepseek, learned from enough calls
    assert "×1 (3 of 20 calls)" in page  # qwen: not yet
    assert "×1 (not learned)" in page  # the others


def test_the_catalog_list_reads_deployments_and_calibrations_with_the_page(staff_client, deployments):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(URL).status_code == 200
        return len(captured)

    few = queries()
    for model in LlmModel.objects.exclude(alias="deepseek"):
        LlmDeployment.objects.create(model=model, name=f"{model.alias}-{uuid.uuid4().hex[:8]}")
        TokenCalibration.objects.create(model=model, ratio=Decimal("1.1"), samples=30)
    assert queries() == few  # not one more per model


def test_a_models_page_shows_each_deployments_state_and_the_calibration(staff_client, deployments, settings):
    settings.TOKEN_CALIBRATION_MIN_SAMPLES, settings.TOKEN_CALIBRATION_MAX = 20, Decimal("2.0")
    deepseek = LlmModel.objects.get(alias="deepseek")
    TokenCalibration.objects.create(
        model=deepseek,
        ratio=Decimal("2.4"),  # learned before the bounds were narrowed: 2.0 is used
        samples=25,
        provider_input_tokens=24_000,
        local_input_tokens=10_000,
        last_ratio=Decimal("2.5"),
    )
    page = staff_client.get(f"{URL}{deepseek.pk}/change/").content.decode()
    states = re.findall(r'<td class="field-state">\s*<p>([^<]*)</p>', page)
    assert re.fullmatch(r"cooling \d+(\.\d)? s, 2 recent failures", states[0])
    assert states[1:] == ["ok, 1 recent failure", "inactive", "—"]  # and the new row's template
    assert "In effect: ×2.000 (learned ×2.4000" in page
    assert (
        "Learned from 25 calls: 24,000 input tokens counted by the provider, 10,000 counted here (×2.4000); "
        "latest call ×2.5000" in page
    )
    qwen = LlmModel.objects.get(alias="qwen")
    assert "Not learned yet" in staff_client.get(f"{URL}{qwen.pk}/change/").content.decode()


@pytest.mark.parametrize(
    ("base_url", "valid"),
    [
        ("https://openrouter.ai/api/v1", True),
        ("http://127.0.0.1:8099/east/v1", True),
        ("", True),
        ("ftp://127.0.0.1/v1", False),
        ("file:///etc/passwd", False),
    ],
)
def test_a_deployments_base_url_is_http_or_https(base_url, valid):
    from django.core.exceptions import ValidationError

    deployment = LlmDeployment(
        model=LlmModel.objects.get(alias="deepseek"), name="d-url-check", base_url=base_url
    )
    if valid:
        deployment.full_clean()
    else:
        with pytest.raises(ValidationError) as refused:
            deployment.full_clean()
        assert "base_url" in refused.value.message_dict
