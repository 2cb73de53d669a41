"""Prometheus metrics: counters and histograms fed by the observability records, and the figures that
live in the database (holds, summaries due, today's cost) or the shared cache (deployments' cool-downs)
read when Prometheus scrapes.

Across processes (gunicorn workers, Celery workers) prometheus-client runs in multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set before the process starts: every process writes its counters to
files there and a scrape sums them. The files are named ``<kind>_<host>-<pid>.db``, so the web and
worker containers may share the directory without two processes ever writing the same file
(``docs/runbook.md``, Metrics).
"""

import os
import socket

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily

from pantheon.observability import (
    BudgetWarned,
    HoldsSwept,
    LlmCallObserved,
    LlmFallover,
    SummaryObserved,
    TurnObserved,
    listen,
)


def process_identifier(pid: int | None = None) -> str:
    """How this process (or ``pid``, on this host) names its metric files."""
    return f"{socket.gethostname()}-{pid or os.getpid()}"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


if multiprocess_dir():
    # Before any metric exists: their values go to this process's own files.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

TURN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
OWN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)

TURNS = Counter(
    "pantheon_turns",
    "Turns ended, by mode and status (completed, partial, failed, refused); refusals carry their code.",
    ["mode", "status", "code"],
)
TURN_SECONDS = Histogram(
    "pantheon_turn_duration_seconds", "Time of a committed turn, end to end.", ["mode"], buckets=TURN_BUCKETS
)
TURN_OWN_SECONDS = Histogram(
    "pantheon_turn_own_duration_seconds",
    "Pantheon's own time in a committed turn (its time less the wait on the LLM).",
    ["mode"],
    buckets=OWN_BUCKETS,
)
LLM_CALLS = Counter(
    "pantheon_llm_calls",
    "LLM calls by model, purpose and error code (`none` when the call succeeded).",
    ["model", "purpose", "error_code"],
)
LLM_SECONDS = Histogram(
    "pantheon_llm_call_duration_seconds",
    "Time of one LLM call, retries included.",
    ["model", "purpose"],
    buckets=LLM_BUCKETS,
)
LLM_DEPLOYMENT_FAILURES = Counter(
    "pantheon_llm_deployment_failures",
    "Failed attempts on a catalog deployment, by model, deployment and error code (each counts "
    "towards its cool-down when the provider is at fault).",
    ["model", "deployment", "error_code"],
)
LLM_FALLOVERS = Counter(
    "pantheon_llm_fallovers",
    "Calls that left a deployment for the model's next one, by the deployment left and why.",
    ["model", "deployment", "error_code"],
)
LLM_TOKENS = Counter("pantheon_llm_tokens", "Tokens by model and direction.", ["model", "direction"])
LLM_CREDITS = Counter("pantheon_llm_credits", "Credits burned by model.", ["model"])
LLM_COST = Counter("pantheon_llm_cost_usd", "Metered cost in USD by model (billed or not).", ["model"])
SUMMARIES = Counter("pantheon_summaries", "Summary runs by outcome (made, existing, failed).", ["outcome"])
SUMMARIES_SWEPT = Counter(
    "pantheon_summaries_swept",
    "Due summaries that the periodic sweep found never made (lost by the broker or a killed worker).",
)
HOLDS_SWEPT = Counter("pantheon_holds_swept", "Abandoned credit holds freed by the sweep.", ["kind"])
HOLD_CREDITS_SWEPT = Counter("pantheon_hold_credits_swept", "Credits freed from abandoned holds.")
BUDGET_WARNINGS = Counter(
    "pantheon_budget_soft_limit_warnings",
    "Budgets that reached their soft limit (once per budget and period), by scope and period.",
    ["scope", "period"],
)


def turn_observed(event: TurnObserved) -> None:
    TURNS.labels(event.mode, event.status, event.code or "none").inc()
    if event.status != "refused":
        TURN_SECONDS.labels(event.mode).observe(event.total_seconds)
        TURN_OWN_SECONDS.labels(event.mode).observe(max(event.total_seconds - event.llm_seconds, 0.0))


def llm_call_observed(event: LlmCallObserved) -> None:
    model = event.model_alias
    LLM_CALLS.labels(model, event.purpose, event.error_code or "none").inc()
    LLM_SECONDS.labels(model, event.purpose).observe(event.seconds)
    LLM_TOKENS.labels(model, "input").inc(event.input_tokens)
    LLM_TOKENS.labels(model, "output").inc(event.output_tokens)
    LLM_CREDITS.labels(model).inc(float(event.credits))
    LLM_COST.labels(model).inc(float(event.cost_usd))
    if event.deployment and not event.succeeded:
        LLM_DEPLOYMENT_FAILURES.labels(model, event.deployment, event.error_code or "none").inc()


def llm_fallover(event: LlmFallover) -> None:
    LLM_FALLOVERS.labels(event.model_alias, event.deployment or "-", event.error_code).inc()


def summary_observed(event: SummaryObserved) -> None:
    if event.swept:
        SUMMARIES_SWEPT.inc()
    else:
        SUMMARIES.labels(event.outcome).inc()


def holds_swept(event: HoldsSwept) -> None:
    HOLDS_SWEPT.labels("turn").inc(event.turn_holds)
    HOLDS_SWEPT.labels("summary").inc(event.summary_holds)
    HOLD_CREDITS_SWEPT.inc(float(event.credits_released))


def budget_warned(event: BudgetWarned) -> None:
    BUDGET_WARNINGS.labels(event.scope, event.period).inc()


def metrics_listen() -> None:
    listen(TurnObserved, turn_observed)
    listen(LlmCallObserved, llm_call_observed)
    listen(LlmFallover, llm_fallover)
    listen(SummaryObserved, summary_observed)
    listen(HoldsSwept, holds_swept)
    listen(BudgetWarned, budget_warned)


class DatabaseFigures:
    """Figures read from the database at scrape time: one scrape, a handful of aggregate queries."""

    def collect(self):
        from pantheon.telemetry.selectors import telemetry_figures  # Django's models: only when scraped

        figures = telemetry_figures()
        holds = GaugeMetricFamily(
            "pantheon_credit_holds", "Credit holds outstanding, by kind.", labels=["kind"]
        )
        held = GaugeMetricFamily("pantheon_credit_holds_credits", "Credits held, by kind.", labels=["kind"])
        for kind, (count, credits) in sorted(figures.holds.items()):
            holds.add_metric([kind], count)
            held.add_metric([kind], float(credits))
        yield holds
        yield held
        yield GaugeMetricFamily(
            "pantheon_credit_holds_expired",
            "Holds past their expiry: work that died; the sweep should free them.",
            value=figures.holds_expired,
        )
        yield GaugeMetricFamily(
            "pantheon_summaries_due", "Summaries due and not yet made.", value=figures.summaries_due
        )
        cost = GaugeMetricFamily(
            "pantheon_cost_usd_today", "Metered cost since midnight UTC, by model.", labels=["model"]
        )
        credits = GaugeMetricFamily(
            "pantheon_credits_burned_today", "Credits burned since midnight UTC, by model.", labels=["model"]
        )
        for model, (usd, burned) in sorted(figures.today_by_model.items()):
            cost.add_metric([model], float(usd))
            credits.add_metric([model], float(burned))
        yield cost
        yield credits


class DeploymentFigures:
    """Each catalog deployment's cool-down, read at scrape time from the store every process shares
    (Redis; without it, this process's own): one query and two cache reads."""

    def collect(self):
        from usage.cooldown import deployments_health  # Django's models: only when scraped

        cooling = GaugeMetricFamily(
            "pantheon_llm_deployment_cooling",
            "1 while a deployment cools down (calls try it only after every other), else 0.",
            labels=["model", "deployment"],
        )
        seconds = GaugeMetricFamily(
            "pantheon_llm_deployment_cooldown_seconds",
            "Seconds left of a deployment's cool-down (0: none).",
            labels=["model", "deployment"],
        )
        failures = GaugeMetricFamily(
            "pantheon_llm_deployment_recent_failures",
            "Failures of a deployment counted in the current cool-down window.",
            labels=["model", "deployment"],
        )
        for deployment in deployments_health():
            labels = [deployment.alias, deployment.name]
            cooling.add_metric(labels, 0 if deployment.cooling_seconds is None else 1)
            seconds.add_metric(labels, deployment.cooling_seconds or 0.0)
            failures.add_metric(labels, deployment.recent_failures)
        yield cooling
        yield seconds
        yield failures


class _ThisProcess:
    """This process's metrics (single-process mode: the default registry)."""

    def collect(self):
        yield from REGISTRY.collect()


def metrics_registry() -> CollectorRegistry:
    """What a scrape reads: every process's counters (multiprocess mode) or this one's, and the
    database figures."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseFigures())
    registry.register(DeploymentFigures())
    return registry


def process_dead(pid: int) -> None:
    """For gunicorn's ``child_exit``: drop the live gauges of a worker that exited (its counters stay
    in the totals, as they should)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(process_identifier(pid))
