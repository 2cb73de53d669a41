"""A session's usage events on the wire: each shows its price list and its operator flags, and
``cost_usd`` means the same in a turn response, ``/usage`` and ``/auth/me``."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from usage.models import LlmCallEvent, PricingVersion

# Two agents: a roundtable makes two calls.
pytestmark = [pytest.mark.django_db, pytest.mark.room(("writer", "deepseek"), ("critic", "qwen"))]


def usage_url(session) -> str:
    return f"/api/v1/sessions/{session.pk}/usage"


def event_make(session, **fields) -> LlmCallEvent:
    defaults = {
        "user": session.room.owner,
        "room_id": session.room_id,
        "session_id": session.pk,
        "purpose": "agent_reply",
        "model_alias": "deepseek",
        "provider_model": "deepseek/deepseek-chat",
    }
    return LlmCallEvent.objects.create(**{**defaults, **fields})


def test_a_usage_event_shows_its_pricing_version_by_id_and_name(api_client, session):
    version = PricingVersion.objects.get(is_active=True)
    event_make(session, pricing_version=version)
    event_make(session, pricing_version=None, purpose="routing", billable=False)
    results = api_client.get(usage_url(session)).json()["results"]
    assert [r["pricing_version"] for r in results] == [{"id": version.pk, "name": version.name}, None]


def test_a_usage_event_shows_the_operator_flags(api_client, session):
    event_make(
        session,
        credits_unbilled=Decimal("1.2500"),
        orphaned=True,
        abandoned=True,
        figures_clamped=True,
    )
    event_make(session)
    flagged, plain = api_client.get(usage_url(session)).json()["results"]
    assert (flagged["credits_unbilled"], plain["credits_unbilled"]) == ("1.2500", "0.0000")
    for flag in ("orphaned", "abandoned", "figures_clamped"):
        assert (flagged[flag], plain[flag]) == (True, False)


def test_listing_usage_takes_the_same_queries_whatever_the_number_of_events(api_client, session):
    version = PricingVersion.objects.get(is_active=True)

    def queries_for_listing() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api_client.get(usage_url(session)).status_code == 200
        return len(captured)

    event_make(session, pricing_version=version)
    few = queries_for_listing()
    for _ in range(5):
        event_make(session, pricing_version=version)
    assert queries_for_listing() == few


def test_a_turns_events_carry_the_active_pricing_version(api_client, session, turn_post):
    response = turn_post("hello", mode="roundtable")
    assert response.status_code == 201, response.content
    version = PricingVersion.objects.get(is_active=True)
    results = api_client.get(usage_url(session)).json()["results"]
    assert len(results) == 2
    assert all(r["pricing_version"] == {"id": version.pk, "name": version.name} for r in results)


def test_cost_usd_means_every_call_in_the_turn_response_usage_and_me(api_client, session, turn_post):
    """An orchestrator turn makes an unbilled routing call: every view counts it in ``cost_usd`` and
    leaves it out of ``billed_cost_usd`` and ``credits_burned``."""
    response = turn_post("hello", mode="orchestrator")
    assert response.status_code == 201, response.content
    events = list(LlmCallEvent.objects.filter(session_id=session.pk))
    assert any(not e.billable and e.cost_usd > 0 for e in events)  # the routing call
    every_call = sum(e.cost_usd for e in events)
    billed = sum(e.cost_usd for e in events if e.billable)
    credits = sum(e.credits_burned for e in events)
    assert billed < every_call

    figures = [
        response.json()["usage"],
        api_client.get(usage_url(session)).json()["totals"],
        api_client.get("/api/v1/auth/me").json()["usage"],
    ]
    for usage in figures:
        assert Decimal(usage["cost_usd"]) == every_call
        assert Decimal(usage["billed_cost_usd"]) == billed
        assert Decimal(usage["credits_burned"]) == credits
