"""Learning the token calibration of each catalog model from reconciled calls (usage/calibration.py
says what it is and how the turn uses it)."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from usage.calibration import calibration_ratio_of, calibration_ratio_update
from usage.models import LlmModel, TokenCalibration


@dataclass(frozen=True)
class CalibrationSample:
    """One reconciled call: its input as the provider counted it (native) and as counted locally."""

    model_alias: str
    provider_input_tokens: int
    local_input_tokens: int


@transaction.atomic
def token_calibrations_learn(*, samples: Sequence[CalibrationSample]) -> int:
    """Fold ``samples`` (in order) into their models' calibrations; returns the samples learned from.

    A sample with a count of zero on either side says nothing and is skipped, as is one of an alias no
    longer in the catalog. Each model's row is locked while it is updated: two reconciliation runs at
    once both count, one after the other.
    """
    by_alias: dict[str, list[CalibrationSample]] = defaultdict(list)
    for sample in samples:
        if sample.provider_input_tokens > 0 and sample.local_input_tokens > 0:
            by_alias[sample.model_alias].append(sample)
    models = dict(LlmModel.objects.filter(alias__in=by_alias).values_list("alias", "pk"))
    learned = 0
    for alias in sorted(by_alias.keys() & models.keys()):  # one order, so two runs never deadlock
        row, _ = TokenCalibration.objects.select_for_update().get_or_create(model_id=models[alias])
        for sample in by_alias[alias]:
            row.ratio = calibration_ratio_update(
                ratio=row.ratio,
                samples=row.samples,
                provider=sample.provider_input_tokens,
                local=sample.local_input_tokens,
            )
            row.last_ratio = calibration_ratio_of(
                provider=sample.provider_input_tokens, local=sample.local_input_tokens
            )
            row.samples += 1
            row.provider_input_tokens += sample.provider_input_tokens
            row.local_input_tokens += sample.local_input_tokens
            learned += 1
        row.save()
    return learned
