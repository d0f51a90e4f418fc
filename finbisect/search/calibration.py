"""How many runs the ends need before the search: calibration at the bug end, the clean end's check.

Calibration runs the bug end in batches until the 5% Beta quantile of the
symptom rate p is at least half of p's posterior mean: p is then known from
below within a factor of two, which bounds the clean-end check at twice the
runs it would take with p known exactly (a tighter rule costs more calibration
runs than it saves there). Projected from the symptom rate so far, this takes
about 3 runs at p = 1, 5-6 symptoms at p = 0.5 and 7 at small p.
"""

from __future__ import annotations

from finbisect.search.posterior import PRIOR_A, PRIOR_B
from finbisect.search.stats import beta_quantile, runs_to_rule_out

__all__ = ["TAIL", "calibrated", "calibration_batch", "clean_end_runs"]

TAIL = 0.05  # rates are bounded by their 5% and 95% quantiles
_CALIBRATED_RATIO = 0.5  # calibration ends when p_low >= this x posterior mean


def calibrated(s: float, f: float) -> bool:
    """Is p bounded from below well enough after `s` symptom and `f` clean runs?"""
    if s <= 0:
        return False
    low = beta_quantile(TAIL, PRIOR_A + s, PRIOR_B + f)
    return low >= _CALIBRATED_RATIO * (PRIOR_A + s) / (PRIOR_A + PRIOR_B + s + f)


def calibration_batch(s: int, f: int, *, cap: int) -> int:
    """The next batch at the bug end: the smallest that would calibrate at today's rate."""
    n = s + f
    if n == 0:
        return min(3, cap)
    if s == 0:
        return max(1, min(n, cap))  # double until a symptom shows
    rate = s / n
    extra = 1
    while extra < cap and not calibrated(s + rate * extra, f + (1 - rate) * extra):
        extra *= 2
    lo = extra // 2
    while lo + 1 < extra:  # smallest projected batch that meets the rule
        mid = (lo + extra) // 2
        if calibrated(s + rate * mid, f + (1 - rate) * mid):
            extra = mid
        else:
            lo = mid
    return max(1, min(extra, cap))


def clean_end_runs(s: int, f: int, confidence: float, *, cap: int) -> int:
    """Runs at the clean end so that, were it on the bug side, it would have shown the
    symptom with probability >= confidence (p at its lower quantile)."""
    low = beta_quantile(TAIL, PRIOR_A + s, PRIOR_B + f)
    return min(runs_to_rule_out(low, confidence), cap)
