"""Local cost per thousand answers against what the same tokens would cost at an API price.

Inputs come from configuration (KB_COST_*, kb/settings.py); measurements from the meter for
one calendar month, on-premises calls only:

    answers A        answer rows the on-premises model was called for (generated, or
                     passages after the model failed: the GPU was busy either way)
    GPU-seconds G    the metered wall time of those calls and of the follow-up rewrites
    tokens Tin, Tout their prompt and completion tokens

    hardware per month   = hardware price / amortisation months
    power                = watts / 1000 * G / 3600 * price per kWh
    local total          = hardware per month + operations per month + power
    local per 1000       = local total / A * 1000
    API total            = Tin / 1,000,000 * input price + Tout / 1,000,000 * output price
    API per 1000         = API total / A * 1000
    at full utilisation  = ((hardware per month + operations) * G / seconds in the month
                            + power) / A * 1000: the local cost per 1000 if the server were
                            kept as busy all month as it was while answering
    break-even answers   = (hardware per month + operations) / (API per answer - power per
                           answer): answers per month from which the local server is cheaper

GPU-seconds are an estimate (kb/usage/models.py): wall time per request, not the GPU's share
under batching, so the local figures are on the high side when many questions overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q, Sum

from kb.usage.models import UsageRecord
from kb.usage.months import Month
from kb.usage.report import records_in


@dataclass(frozen=True)
class CostInputs:
    currency: str
    hardware_price: float
    hardware_months: int
    power_watts: float
    power_price_per_kwh: float
    operations_per_month: float
    api_input_per_million: float
    api_output_per_million: float

    @classmethod
    def configured(cls) -> CostInputs:
        return cls(
            currency=settings.KB_COST_CURRENCY,
            hardware_price=settings.KB_COST_HARDWARE_PRICE,
            hardware_months=settings.KB_COST_HARDWARE_MONTHS,
            power_watts=settings.KB_COST_POWER_WATTS,
            power_price_per_kwh=settings.KB_COST_POWER_PRICE_PER_KWH,
            operations_per_month=settings.KB_COST_OPERATIONS_PER_MONTH,
            api_input_per_million=settings.KB_COST_API_INPUT_PRICE_PER_MILLION,
            api_output_per_million=settings.KB_COST_API_OUTPUT_PRICE_PER_MILLION,
        )


@dataclass(frozen=True)
class CostComparison:
    month: Month
    inputs: CostInputs
    answers: int
    gpu_seconds: float
    prompt_tokens: int
    completion_tokens: int
    external_answers: int
    external_prompt_tokens: int
    external_completion_tokens: int
    hardware_per_month: float
    power: float
    local_total: float
    api_total: float
    external_api_cost: float
    local_per_thousand: float | None
    api_per_thousand: float | None
    local_per_thousand_at_full_use: float | None
    break_even_answers: float | None

    @property
    def kwh(self) -> float:
        return self.inputs.power_watts / 1000 * self.gpu_seconds / 3600

    @property
    def utilisation(self) -> float:
        return self.gpu_seconds / self.month.seconds


def api_cost(inputs: CostInputs, prompt_tokens: int, completion_tokens: int) -> float:
    return (
        prompt_tokens / 1_000_000 * inputs.api_input_per_million
        + completion_tokens / 1_000_000 * inputs.api_output_per_million
    )


def compare(month: Month, inputs: CostInputs | None = None) -> CostComparison:
    inputs = inputs or CostInputs.configured()
    rows = records_in(month)
    answer = Q(kind=UsageRecord.Kind.ANSWER) & ~Q(endpoint="")
    local = rows.filter(on_premises=True).aggregate(
        answers=Count("id", filter=answer),
        gpu_seconds=Sum("gpu_seconds"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
    )
    external = rows.filter(on_premises=False).aggregate(
        answers=Count("id", filter=answer),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
    )
    answers = int(local["answers"] or 0)
    gpu_seconds = float(local["gpu_seconds"] or 0.0)
    prompt, completion = int(local["prompt"] or 0), int(local["completion"] or 0)
    ext_prompt, ext_completion = int(external["prompt"] or 0), int(external["completion"] or 0)

    hardware = inputs.hardware_price / inputs.hardware_months
    fixed = hardware + inputs.operations_per_month
    power = inputs.power_watts / 1000 * gpu_seconds / 3600 * inputs.power_price_per_kwh
    local_total = fixed + power
    api_total = api_cost(inputs, prompt, completion)

    def per_thousand(total: float) -> float | None:
        return total / answers * 1000 if answers else None

    break_even = None
    if answers and api_total > power:
        break_even = fixed / ((api_total - power) / answers)
    return CostComparison(
        month=month,
        inputs=inputs,
        answers=answers,
        gpu_seconds=gpu_seconds,
        prompt_tokens=prompt,
        completion_tokens=completion,
        external_answers=int(external["answers"] or 0),
        external_prompt_tokens=ext_prompt,
        external_completion_tokens=ext_completion,
        hardware_per_month=hardware,
        power=power,
        local_total=local_total,
        api_total=api_total,
        external_api_cost=api_cost(inputs, ext_prompt, ext_completion),
        local_per_thousand=per_thousand(local_total),
        api_per_thousand=per_thousand(api_total),
        local_per_thousand_at_full_use=per_thousand(fixed * gpu_seconds / month.seconds + power),
        break_even_answers=break_even,
    )
