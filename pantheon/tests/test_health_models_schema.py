import pytest
import yaml
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from usage.models import LlmModel, PricingVersion

pytestmark = pytest.mark.django_db


def test_health_reports_database_and_eager_broker(anon_client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = anon_client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "eager"}


def test_health_reports_a_live_redis_broker(anon_client, settings, redis_url):
    from pantheon.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.broker_url = redis_url
    try:
        response = anon_client.get("/api/v1/health")
    finally:
        app.conf.broker_url = settings.CELERY_BROKER_URL
    assert response.status_code == 200 and response.json()["broker"] == "ok"


def test_health_reports_an_unreachable_broker(anon_client, settings):
    from pantheon.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = anon_client.get("/api/v1/health")
    finally:
        app.conf.broker_url = settings.CELERY_BROKER_URL
    assert response.status_code == 200 and response.json()["broker"] == "unavailable"


def test_health_is_503_when_the_database_is_down(anon_client):
    def refuse(execute, sql, params, many, context):
        raise connection.Database.OperationalError("connection refused")

    with connection.execute_wrapper(refuse):
        response = anon_client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable" and response.json()["status"] == "unavailable"


def test_models_lists_active_catalog_with_current_prices(api_client):
    LlmModel.objects.filter(alias="llama").update(is_active=False)
    body = api_client.get("/api/v1/models").json()
    by_alias = {m["alias"]: m for m in body}
    assert {"deepseek", "qwen", "gpt-4o-mini", "claude-haiku"} <= set(by_alias) and "llama" not in by_alias
    deepseek = by_alias["deepseek"]
    assert deepseek["provider_model"] == "deepseek/deepseek-chat"
    assert (
        deepseek["input_usd_per_million"] == "0.300000" and deepseek["output_usd_per_million"] == "0.850000"
    )
    assert deepseek["pricing_version"] == PricingVersion.objects.get(is_active=True).name
    assert deepseek["context_window"] > 0


def test_exactly_one_active_pricing_version_is_enforced():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        PricingVersion.objects.create(name="second", is_active=True)


EXPECTED_PATHS = {
    "/api/v1/health",
    "/api/v1/auth/register",
    "/api/v1/auth/token",
    "/api/v1/auth/me",
    "/api/v1/models",
    "/api/v1/rooms",
    "/api/v1/rooms/{room_id}",
    "/api/v1/rooms/{room_id}/agents",
    "/api/v1/rooms/{room_id}/agents/{agent_key}",
    "/api/v1/rooms/{room_id}/sessions",
    "/api/v1/rooms/{room_id}/sessions/{session_id}",
    "/api/v1/sessions/{session_id}/turns",
    "/api/v1/sessions/{session_id}/summaries",
    "/api/v1/sessions/{session_id}/usage",
}


def test_schema_builds_without_warnings_and_has_every_path(capsys):
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache
    assert set(schema["paths"]) >= EXPECTED_PATHS
    error_shape = schema["components"]["schemas"]["Error"]["properties"]
    assert {"detail", "code", "fields"} <= set(error_shape)
    turn_post = schema["paths"]["/api/v1/sessions/{session_id}/turns"]["post"]
    assert {"201", "402", "409", "422", "502"} <= set(turn_post["responses"])


def test_schema_and_docs_are_served(anon_client):
    schema = anon_client.get("/api/schema/")
    assert schema.status_code == 200 and "/api/v1/rooms" in yaml.safe_load(schema.content)["paths"]
    assert anon_client.get("/api/docs/").status_code == 200
