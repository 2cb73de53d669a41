"""GET /metrics: not public, and after real turns (offline provider) the figures are the turns' —
counters and histograms from the observability records, database figures read at scrape time."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from orchestration.services.summaries import session_summary_generate
from orchestration.tasks import summaries_due_sweep
from sessions_app.models import ChatSession
from sessions_app.tests.factories import SessionFactory
from usage.models import CreditHold, LlmCallEvent

pytestmark = pytest.mark.django_db

TOKEN = "scrape-secret"


@pytest.fixture
def scrape(client, settings):
    """Scrape as Prometheus would; the samples as {(name, sorted labels): value}."""
    settings.METRICS_TOKEN = TOKEN

    def read() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    return read


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_do_not_exist_without_a_token_setting(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Token {TOKEN}", TOKEN])
def test_metrics_refuse_a_scraper_without_the_token(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_turns_and_their_calls_are_counted_by_mode_status_model_and_purpose(session, scrape, turn_post):
    before = scrape()
    assert turn_post("@writer @critic go").status_code == 201
    assert turn_post("@critic again").status_code == 201
    assert turn_post("what do you think?", mode="orchestrator").status_code == 201
    assert turn_post("no tag").status_code == 422
    after = scrape()

    assert delta(before, after, "pantheon_turns_total", mode="manual", status="completed", code="none") == 2
    assert (
        delta(before, after, "pantheon_turns_total", mode="orchestrator", status="completed", code="none")
        == 1
    )
    assert (
        delta(
            before, after, "pantheon_turns_total", mode="manual", status="refused", code="no_agent_selected"
        )
        == 1
    )
    assert delta(before, after, "pantheon_turn_duration_seconds_count", mode="manual") == 2
    assert delta(before, after, "pantheon_turn_own_duration_seconds_count", mode="manual") == 2

    events = LlmCallEvent.objects.filter(session_id=session.pk)
    for event in events.values("model_alias", "purpose").distinct():
        model, purpose = event["model_alias"], event["purpose"]
        calls = events.filter(model_alias=model, purpose=purpose)
        labels = {"model": model, "purpose": purpose}
        assert delta(before, after, "pantheon_llm_calls_total", **labels, error_code="none") == calls.count()
        assert delta(before, after, "pantheon_llm_call_duration_seconds_count", **labels) == calls.count()
    assert {e["purpose"] for e in events.values("purpose")} == {"agent_reply", "routing"}
    for model in ("deepseek", "gpt-4o-mini"):
        calls = events.filter(model_alias=model)
        assert delta(before, after, "pantheon_llm_tokens_total", model=model, direction="input") == sum(
            e.input_tokens for e in calls
        )
        assert delta(before, after, "pantheon_llm_tokens_total", model=model, direction="output") == sum(
            e.output_tokens for e in calls
        )
        assert delta(before, after, "pantheon_llm_credits_total", model=model) == pytest.approx(
            float(sum(e.credits_burned for e in calls))
        )


def test_failed_calls_are_counted_by_error_code(scrape, fake_llm, turn_post):
    from orchestration.testing.fake_server import Step

    fake_llm.enqueue(Step(model="deepseek/deepseek-chat", status=500))
    before = scrape()
    assert turn_post("@writer @critic go").status_code == 201
    after = scrape()
    labels = {"model": "deepseek", "purpose": "agent_reply"}
    assert delta(before, after, "pantheon_llm_calls_total", **labels, error_code="provider_unavailable") == 1
    assert delta(before, after, "pantheon_turns_total", mode="manual", status="partial", code="none") == 1


def test_todays_cost_and_credits_are_read_from_the_usage_events(session, scrape, turn_post):
    assert turn_post("@writer @critic go").status_code == 201
    LlmCallEvent.objects.filter(session_id=session.pk, model_alias="deepseek").update(
        created_at=timezone.now() - timedelta(days=2)
    )  # yesterday's calls are not today's cost
    figures = scrape()
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    today = LlmCallEvent.objects.filter(created_at__gte=midnight, model_alias="gpt-4o-mini")
    assert today.exists()
    assert figures[("pantheon_cost_usd_today", (("model", "gpt-4o-mini"),))] == pytest.approx(
        float(sum(e.cost_usd for e in today))
    )
    assert figures[("pantheon_credits_burned_today", (("model", "gpt-4o-mini"),))] == pytest.approx(
        float(sum(e.credits_burned for e in today))
    )


def test_holds_outstanding_are_read_from_the_database(user, scrape):
    now = timezone.now()
    CreditHold.objects.create(
        user=user, kind="turn", amount=Decimal("1.5"), expires_at=now + timedelta(minutes=1)
    )
    CreditHold.objects.create(
        user=user, kind="turn", amount=Decimal("2"), expires_at=now - timedelta(minutes=1)
    )
    CreditHold.objects.create(
        user=user, kind="summary", amount=Decimal("0.25"), expires_at=now, covers_through_turn_index=8
    )
    figures = scrape()
    assert figures[("pantheon_credit_holds", (("kind", "turn"),))] == 2
    assert figures[("pantheon_credit_holds", (("kind", "summary"),))] == 1
    assert figures[("pantheon_credit_holds_credits", (("kind", "turn"),))] == 3.5
    assert figures[("pantheon_credit_holds_credits", (("kind", "summary"),))] == 0.25
    assert figures[("pantheon_credit_holds_expired", ())] == 2


def test_summaries_made_due_and_swept_are_counted(session, scrape):
    ChatSession.objects.filter(pk=session.pk).update(summary_due_through=0)
    other = SessionFactory(room=session.room)
    ChatSession.objects.filter(pk=other.pk).update(summary_due_through=1)  # due, never made
    before = scrape()
    assert before[("pantheon_summaries_due", ())] >= 1

    session_summary_generate(session_id=session.pk, through_index=0)  # made directly
    session_summary_generate(session_id=session.pk, through_index=0)  # already made
    summaries_due_sweep()  # Celery is eager in the tests: the sweep makes the lost one now
    after = scrape()

    assert delta(before, after, "pantheon_summaries_total", outcome="made") == 2
    assert delta(before, after, "pantheon_summaries_total", outcome="existing") == 1
    assert delta(before, after, "pantheon_summaries_swept_total") == 1
    assert after[("pantheon_summaries_due", ())] == before[("pantheon_summaries_due", ())] - 1


def test_holds_freed_by_the_sweep_are_counted(scrape):
    from pantheon.observability import HoldsSwept, observe

    before = scrape()
    observe(HoldsSwept(turn_holds=2, summary_holds=1, credits_released=Decimal("4.5")))
    after = scrape()
    assert delta(before, after, "pantheon_holds_swept_total", kind="turn") == 2
    assert delta(before, after, "pantheon_holds_swept_total", kind="summary") == 1
    assert delta(before, after, "pantheon_hold_credits_swept_total") == 4.5


def test_deployments_cooling_failing_and_falling_over_are_in_the_metrics(
    scrape, fake_llm, turn_post, settings, monkeypatch
):
    """``deepseek`` served by ``east`` then ``west``: east fails twice (two turns falling over to
    west), which cools it down; the scrape reads the cool-down from the shared store."""
    from orchestration.testing.fake_server import Step
    from usage import cooldown
    from usage.models import LlmDeployment, LlmModel

    settings.LLM_COOLDOWN_FAILURES, settings.LLM_COOLDOWN_SECONDS = 2, 30
    settings.LLM_COOLDOWN_WINDOW_SECONDS = 86400  # both failures in one window, whatever the clock
    settings.LLM_FALLBACK_MAX_ATTEMPTS = 2
    monkeypatch.setattr(cooldown, "_local", {})
    deepseek = LlmModel.objects.get(alias="deepseek")
    tag = uuid.uuid4().hex[:8]
    east, west = (
        LlmDeployment.objects.create(
            model=deepseek, name=f"{route}-{tag}", position=position, base_url=fake_llm.route_url(route)
        ).name
        for position, route in enumerate(("east", "west"))
    )
    before = scrape()
    assert before[("pantheon_llm_deployment_cooling", (("deployment", east), ("model", "deepseek")))] == 0
    for _ in range(2):
        fake_llm.enqueue(Step(status=503, route="east"))
        assert turn_post("@writer hello").status_code == 201  # west answered
    after = scrape()

    east_labels = {"model": "deepseek", "deployment": east}
    west_labels = {"model": "deepseek", "deployment": west}
    unavailable = {"error_code": "provider_unavailable"}
    assert delta(before, after, "pantheon_llm_deployment_failures_total", **east_labels, **unavailable) == 2
    assert delta(before, after, "pantheon_llm_fallovers_total", **east_labels, **unavailable) == 2
    assert delta(before, after, "pantheon_llm_fallovers_total", **west_labels, **unavailable) == 0

    def gauge(name: str, labels: dict) -> float:
        return after[(name, tuple(sorted(labels.items())))]

    assert gauge("pantheon_llm_deployment_cooling", east_labels) == 1
    assert 0 < gauge("pantheon_llm_deployment_cooldown_seconds", east_labels) <= 30
    assert gauge("pantheon_llm_deployment_recent_failures", east_labels) == 2
    assert gauge("pantheon_llm_deployment_cooling", west_labels) == 0
    assert gauge("pantheon_llm_deployment_cooldown_seconds", west_labels) == 0
    assert gauge("pantheon_llm_deployment_recent_failures", west_labels) == 0
