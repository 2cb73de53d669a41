"""Structured logs: JSON lines carrying the request, user, session and turn ids, and one line per
turn with its mode, agents, status, times, tokens and cost — asserted on real turns through the API
(offline provider)."""

import io
import json
import logging.config
from decimal import Decimal

import pytest
from django.conf import settings as django_settings

from orchestration.testing.fake_server import Step
from pantheon.logging import logging_config
from usage.models import LlmCallEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    """The production logging configuration (LOG_FORMAT=json) writing to a buffer; the lines parsed."""
    stream = io.StringIO()
    config = logging_config(log_format="json", level="INFO")
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.config.dictConfig(django_settings.LOGGING)


def _turn_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("event") == "turn"]


def test_a_turn_writes_one_json_line_with_its_figures(api_client, user, session, json_lines):
    response = api_client.post(
        f"/api/v1/sessions/{session.pk}/turns",
        {"user_input": "@writer @critic a title?", "mode": "manual"},
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 201
    turn_id = response.json()["id"]
    events = LlmCallEvent.objects.filter(turn_id=turn_id)

    (line,) = _turn_lines(json_lines())

    assert line["logger"] == "pantheon.turns" and line["level"] == "INFO"
    assert line["request_id"] == "req-42"
    assert line["turn_id"] == turn_id
    assert line["session_id"] == str(session.pk)
    assert line["user_id"] == str(user.pk)
    assert line["status"] == "completed" and line["mode"] == "manual"
    assert line["agents"] == ["writer", "critic"]
    assert line["input_tokens"] == sum(e.input_tokens for e in events) > 0
    assert line["output_tokens"] == sum(e.output_tokens for e in events) > 0
    assert Decimal(line["cost_usd"]) == sum(e.cost_usd for e in events) > 0
    assert Decimal(line["credits"]) == sum(e.credits_burned for e in events) > 0
    assert line["llm_ms"] >= 0 and line["pantheon_ms"] > 0


def test_every_line_of_a_request_carries_its_ids(api_client, user, session, json_lines):
    response = api_client.post(
        f"/api/v1/sessions/{session.pk}/turns",
        {"user_input": "@writer go", "mode": "manual"},
        HTTP_X_REQUEST_ID="req-43",
    )
    lines = json_lines()
    start = next(line for line in lines if line["message"].startswith("turn prepared"))
    assert start["turn_id"] == response.json()["id"]
    for line in lines:
        assert (line["request_id"], line["user_id"], line["session_id"]) == (
            "req-43",
            str(user.pk),
            str(session.pk),
        )


def test_a_refused_turn_writes_its_line_with_the_refusal_code(api_client, session, json_lines):
    response = api_client.post(
        f"/api/v1/sessions/{session.pk}/turns", {"user_input": "no tag here", "mode": "manual"}
    )
    assert response.status_code == 422
    (line,) = _turn_lines(json_lines())
    assert line["status"] == "refused" and line["code"] == "no_agent_selected"
    assert line["turn_id"] == "-" and line["session_id"] == str(session.pk)
    assert line["agents"] == [] and line["input_tokens"] == 0


def test_a_failed_turns_lines_say_why_and_djangos_own_carries_the_ids(
    user, session, fake_llm, turn_post, json_lines
):
    fake_llm.enqueue(Step(status=503), Step(status=503))
    response = turn_post("@writer @critic go", HTTP_X_REQUEST_ID="req-45")
    assert response.status_code == 502
    lines = json_lines()
    (line,) = _turn_lines(lines)
    assert line["status"] == "failed" and line["code"] == "llm_unavailable"
    assert line["cost_usd"] == "0" and line["credits"] == "0"  # not 0E-12
    (answered,) = [line for line in lines if line["logger"] == "django.request"]  # "Bad Gateway: …"
    assert (answered["request_id"], answered["user_id"], answered["session_id"]) == (
        "req-45",
        str(user.pk),
        str(session.pk),
    )


def test_text_format_keeps_key_value_lines_with_the_ids(api_client, user, session):
    stream = io.StringIO()
    config = logging_config(log_format="text", level="INFO")
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        api_client.post(
            f"/api/v1/sessions/{session.pk}/turns",
            {"user_input": "@writer go", "mode": "manual"},
            HTTP_X_REQUEST_ID="req-44",
        )
    finally:
        logging.config.dictConfig(django_settings.LOGGING)
    (line,) = [line for line in stream.getvalue().splitlines() if "logger=pantheon.turns" in line]
    assert f"request=req-44 user={user.pk} session={session.pk} turn=" in line
    assert "turn completed mode=manual agents=writer" in line


@pytest.mark.parametrize(
    "given, echoed",
    [("edge-7f3a:12", "edge-7f3a:12"), ("a" * 129, None), ("bad id\nforged=1", None), ("", None)],
)
def test_the_request_id_is_accepted_when_sane_and_always_echoed(anon_client, given, echoed):
    response = anon_client.get("/api/v1/health", HTTP_X_REQUEST_ID=given)
    request_id = response["X-Request-ID"]
    if echoed:
        assert request_id == echoed
    else:
        assert request_id != given and len(request_id) == 32 and request_id.isalnum()
