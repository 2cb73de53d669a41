"""Reconciliation: compare recorded usage with what the provider reports, fill in what is missing,
flag drift beyond a tolerance, and keep the daily rollups per user and model."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from usage.models import LlmCallEvent, UsageDailyRollup
from usage.provider import GenerationRecord, ProviderLookupError, generation_get, provider_lookup_configured
from usage.selectors import USAGE_AGGREGATES
from usage.services.calibration import CalibrationSample, token_calibrations_learn

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
R = LlmCallEvent.Reconciliation
# The figures a daily rollup keeps (the aggregates are defined once, in usage.selectors).
ROLLUP_FIGURES = (
    "events",
    "failed_events",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "billed_cost_usd",
    "credits_burned",
    "provider_cost_usd",
    "drift_events",
)


@dataclass
class ReconcileReport:
    checked: int = 0
    matched: int = 0
    drift: int = 0
    missing: int = 0
    not_applicable: int = 0
    unavailable: int = 0
    rollup_rows: int = 0
    # Calls whose native input count fed their model's token calibration.
    calibrated: int = 0
    # Events with a generation id still pending after the run: the cap (``limit``) or an
    # unavailable provider left them for the next run.
    still_pending: int = 0
    capped: bool = False


def cost_drifts(*, ours: Decimal, theirs: Decimal) -> bool:
    """Drift when the difference is beyond both the absolute and the relative tolerance."""
    difference = abs(ours - theirs)
    if difference <= settings.RECONCILE_DRIFT_TOLERANCE_USD:
        return False
    return difference > settings.RECONCILE_DRIFT_TOLERANCE_RATIO * max(abs(ours), abs(theirs))


def usage_reconcile(
    *,
    since: datetime | None = None,
    limit: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> ReconcileReport:
    """Reconcile pending events since ``since`` (default: the lookback window), at most ``limit``
    provider lookups, then rebuild the rollups of the days touched. Safe to run again: settled
    events are not asked about twice. ``progress(done, total)`` is called before each lookup and
    once at the end."""
    since = since or timezone.now() - timedelta(hours=settings.RECONCILE_LOOKBACK_HOURS)
    report = ReconcileReport()
    pending = LlmCallEvent.objects.filter(reconciliation=R.PENDING, created_at__gte=since).order_by(
        "created_at"
    )

    # Nothing to ask the provider about: no generation id, or made by the offline provider.
    report.not_applicable = pending.filter(
        Q(provider_generation_id="") | Q(provider_generation_id__startswith="offline-")
    ).update(reconciliation=R.NOT_APPLICABLE, reconciled_at=timezone.now())

    lookup = provider_lookup_configured()
    to_check = pending.exclude(provider_generation_id="")
    samples: list[CalibrationSample] = []
    total = min(to_check.count(), limit) if progress else 0
    for event in to_check[:limit]:
        report.checked += 1
        if progress:
            progress(report.checked - 1, total)
        if not lookup:
            report.unavailable += 1
            continue
        try:
            record = generation_get(generation_id=event.provider_generation_id)
        except ProviderLookupError as exc:
            logger.warning("reconciliation: provider lookup failed (%s); will retry next run", exc)
            report.unavailable += 1
            break  # the provider is not answering: stop this run, keep the rest pending
        if _event_settle(event=event, record=record, report=report):
            samples.extend(_calibration_sample(event=event, record=record))
    if progress:
        progress(report.checked, total)
    report.calibrated = token_calibrations_learn(samples=samples) if samples else 0
    report.still_pending = to_check.count()
    report.capped = report.checked == limit and report.still_pending > 0

    days = set(_days_since(since))
    report.rollup_rows = usage_rollups_rebuild(days=days)
    logger.info(
        "reconciliation checked=%s matched=%s drift=%s missing=%s n/a=%s unavailable=%s rollups=%s "
        "calibrated=%s still_pending=%s capped=%s",
        report.checked,
        report.matched,
        report.drift,
        report.missing,
        report.not_applicable,
        report.unavailable,
        report.rollup_rows,
        report.calibrated,
        report.still_pending,
        report.capped,
    )
    return report


# The event's count of each part the provider's record may report (usage.provider.NATIVE_COUNTS).
EVENT_COUNTS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cached_input": "cached_input_tokens",
    "reasoning": "reasoning_tokens",
}


def token_parts_compare(*, event: LlmCallEvent, record: GenerationRecord) -> dict[str, list[int]]:
    """The parts whose counts differ from the provider's: ``{part: [ours, theirs]}``. A cost that
    drifts is explained by them (a cached prefix billed as input, reasoning not counted …)."""
    return {
        part: [getattr(event, field), record.tokens[part]]
        for part, field in EVENT_COUNTS.items()
        if part in record.tokens and getattr(event, field) != record.tokens[part]
    }


def _calibration_sample(*, event: LlmCallEvent, record: GenerationRecord | None) -> list[CalibrationSample]:
    """The call as a sample of its model's token calibration: its native input count beside the local
    count made before the call (none when either is unknown)."""
    native = record.tokens.get("input") if record else None
    if native is None or not event.local_input_tokens:
        return []
    return [
        CalibrationSample(
            model_alias=event.model_alias,
            provider_input_tokens=native,
            local_input_tokens=event.local_input_tokens,
        )
    ]


def _event_settle(*, event: LlmCallEvent, record: GenerationRecord | None, report: ReconcileReport) -> bool:
    """Record the provider's verdict on ``event``; False when another run settled it first."""
    final = record.total_cost if record else None
    if final is None:
        status = R.MISSING
        report.missing += 1
        logger.warning("reconciliation: generation %s unknown to the provider", event.provider_generation_id)
    elif cost_drifts(ours=event.cost_usd, theirs=final):
        status = R.DRIFT
        report.drift += 1
        logger.warning(
            "reconciliation: drift on %s (%s): ours %s USD, provider %s USD; tokens differing: %s",
            event.provider_generation_id,
            event.model_alias,
            event.cost_usd,
            final,
            token_parts_compare(event=event, record=record) or "none",
        )
    else:
        status = R.MATCHED
        report.matched += 1
    update = {
        "reconciliation": status,
        "provider_final_cost_usd": final,
        "reconciliation_detail": token_parts_compare(event=event, record=record) if record else {},
        "reconciled_at": timezone.now(),
    }
    if event.provider_cost_usd is None and final is not None:
        update["provider_cost_usd"] = final  # fill in what the call's response did not carry
    return LlmCallEvent.objects.filter(pk=event.pk, reconciliation=R.PENDING).update(**update) == 1


def _days_since(since: datetime) -> list[date]:
    first, last = timezone.localdate(since), timezone.localdate()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@transaction.atomic
def usage_rollups_rebuild(*, days: set[date]) -> int:
    """Recompute the rollups of ``days`` from the events (idempotent)."""
    if not days:
        return 0
    # Two runs at once (beat and the command) would each delete and then insert the same days: the
    # second waits for the first here (readers do not), then rebuilds from the events as they are.
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(UsageDailyRollup._meta.db_table)
        cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    rows = (
        LlmCallEvent.objects.annotate(day=TruncDate("created_at"))
        .filter(day__in=days)
        .values("day", "user_id", "model_alias")
        .annotate(**{f"t_{name}": USAGE_AGGREGATES[name] for name in ROLLUP_FIGURES})
    )
    UsageDailyRollup.objects.filter(day__in=days).delete()
    rollups = [
        UsageDailyRollup(
            day=r["day"],
            user_id=r["user_id"],
            model_alias=r["model_alias"],
            **{name: r[f"t_{name}"] for name in ROLLUP_FIGURES},
        )
        for r in rows
    ]
    UsageDailyRollup.objects.bulk_create(rollups)
    return len(rollups)
