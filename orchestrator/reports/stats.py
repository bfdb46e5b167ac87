"""The statistics of an experiment: a proportion with its Wilson 95% interval, two proportions tested.

scipy does the arithmetic: ``binomtest(...).proportion_ci(method="wilson")`` for the interval
(sound at small counts and near 0% or 100%, where the textbook normal interval is not), and the
2x2 chi-squared test without continuity correction for two proportions, which is exactly the
two-sided pooled two-proportion z-test.
"""

from __future__ import annotations

from typing import Any

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


def proportion(successes: int, trials: int) -> dict[str, Any]:
    """``successes / trials`` with its Wilson interval; value and bounds are None without trials."""
    if trials <= 0:
        return {"value": None, "low": None, "high": None, "numerator": successes, "denominator": trials}
    from scipy.stats import binomtest

    interval = binomtest(min(successes, trials), trials).proportion_ci(confidence_level=CONFIDENCE,
                                                                       method="wilson")
    return {"value": round(successes / trials, 6), "low": round(float(interval.low), 6),
            "high": round(float(interval.high), 6), "numerator": successes, "denominator": trials}


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value that k1/n1 and k2/n2 come from the same rate; None without trials on a side."""
    if n1 <= 0 or n2 <= 0:
        return None
    if k1 + k2 == 0 or k1 + k2 == n1 + n2:  # nobody, or everybody, on both sides: no difference to see
        return 1.0
    from scipy.stats import chi2_contingency

    table = [[k1, n1 - k1], [k2, n2 - k2]]
    return float(chi2_contingency(table, correction=False).pvalue)
