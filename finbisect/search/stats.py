"""Statistics without scipy: the Beta distribution, rate intervals, Z-channel bits.

Used by the noisy search (posterior over p), the reports (intervals on
symptom rates) and the benchmarks (the information bound).
"""

from __future__ import annotations

import math

__all__ = [
    "best_split",
    "beta_cdf",
    "beta_mixture_quantile",
    "beta_quantile",
    "binary_entropy",
    "log_beta",
    "rate_interval",
    "runs_to_rule_out",
    "split_information",
    "t_critical_95",
    "z_channel_capacity",
]

_EPS = 1e-12


def log_beta(a: float, b: float) -> float:
    """log B(a, b)."""
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b): P(X <= x) for X ~ Beta(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def beta_mixture_quantile(q: float, parts: list[tuple[float, float, float]]) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(w * beta_cdf(mid, a, b) for w, a, b in parts) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def beta_quantile(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), by bisection on `beta_cdf`."""
    return beta_mixture_quantile(q, [(1.0, a, b)])


def binary_entropy(x: float) -> float:
    if x <= _EPS or x >= 1.0 - _EPS:
        return 0.0
    return -x * math.log2(x) - (1.0 - x) * math.log2(1.0 - x)


def split_information(m: float, t: float) -> float:
    """Bits about the culprit from "any symptom?" at a revision: P(bug side) = m, P(sym|bug) = t."""
    return binary_entropy(m * t) - m * binary_entropy(t)


def best_split(t: float) -> float:
    """The bug-side mass that maximises `_info` (the Z-channel's optimal input)."""
    s = 1.0 - t
    if t <= _EPS:
        return 1.0 / math.e
    return 1.0 / (t * (1.0 + float(2.0 ** (binary_entropy(s) / t))))


def z_channel_capacity(p: float) -> float:
    """Bits per run when a bug-side run shows the symptom with probability p."""
    if p >= 1.0:
        return 1.0
    s = 1.0 - p
    return math.log2(1.0 + p * s ** (s / p))


def rate_interval(symptoms: int, runs: int) -> tuple[float, float]:
    """90% Jeffreys interval of a symptom rate (Beta(1/2, 1/2) prior)."""
    if runs == 0:
        return 0.0, 1.0
    low = 0.0 if symptoms == 0 else beta_quantile(0.05, symptoms + 0.5, runs - symptoms + 0.5)
    high = 1.0 if symptoms == runs else beta_quantile(0.95, symptoms + 0.5, runs - symptoms + 0.5)
    return low, high


def runs_to_rule_out(rate: float, confidence: float) -> int:
    """Clean runs after which a symptom showing in >= `rate` of runs is ruled out with
    `confidence`: the smallest k with (1 - rate)^k <= 1 - confidence."""
    if rate >= 1.0 - _EPS:
        return 1
    return max(1, math.ceil(math.log(1.0 - confidence) / math.log1p(-rate)))


def t_critical_95(dof: int) -> float:
    """The two-sided 95% critical value of Student's t with `dof` degrees of freedom.

    P(|T| > t) = I_x(dof/2, 1/2) with x = dof / (dof + t²) (the incomplete beta).
    """
    x = beta_quantile(0.05, dof / 2.0, 0.5)
    return math.sqrt(dof * (1.0 - x) / x)
