"""The one error shape holds at the edges: throttling, oversized bodies, wrong media types."""

import json

import pytest

from pantheon.api.throttling import ScopedRateThrottle
from sessions_app.api.views import TurnViewSet

pytestmark = pytest.mark.django_db


def test_turns_are_throttled_with_retry_after(api_client, session, turn_post, monkeypatch):
    from django.core.cache import cache

    cache.clear()
    monkeypatch.setattr(TurnViewSet, "throttle_classes", [ScopedRateThrottle])
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"turns": "2/min"})
    statuses = [turn_post("@writer hi").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    throttled = turn_post("@writer hi")
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    assert api_client.get(f"/api/v1/sessions/{session.pk}/turns").status_code == 200  # reads: not throttled
    cache.clear()


def test_oversized_body_is_400_json(api_client):
    body = json.dumps({"name": "x" * 3_000_000})
    response = api_client.generic("POST", "/api/v1/rooms", body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "invalid"


def test_wrong_media_type_is_415_with_code(api_client):
    response = api_client.generic("POST", "/api/v1/rooms", "name=x", content_type="text/plain")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


def test_unknown_api_path_is_404_json(api_client):
    response = api_client.get("/api/v1/nowhere")
    assert response.status_code == 404 and response.json() == {"detail": "Not found.", "code": "not_found"}
