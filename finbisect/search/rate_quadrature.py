"""Each rate's posterior mean and 90% interval, by quadrature on a fine grid. Pure.

For reports: the rate-change posterior (rate_posterior.py) is a mixture over
cells and clean-prior components of Beta pairs (a0, b0, a1, b1) under the
order constraint p_clean < p_bug. Each pair's constrained marginal density of
p_bug is Beta(a1, b1)(x)·P(X0 < x), of p_clean Beta(a0, b0)(x)·P(X1 > x), both
CDFs by cumulative sums on the grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RateSummary", "summarise_marginals"]

_GRID = 2000  # quadrature points on [0, 1]


@dataclass(frozen=True, kw_only=True)
class RateSummary:
    """A rate's posterior mean and 90% interval (5% and 95% quantiles)."""

    estimate: float
    low: float
    high: float


def summarise_marginals(
    weighted: Iterable[tuple[float, tuple[float, float, float, float]]],
) -> tuple[RateSummary, RateSummary]:
    """(clean rate, bug rate) of the mixture Σ w·(constrained Beta pair (a0, b0, a1, b1))."""
    xs = [(i + 0.5) / _GRID for i in range(_GRID)]
    grid = ([math.log(x) for x in xs], [math.log1p(-x) for x in xs])
    clean_pdf = [0.0] * _GRID
    bug_pdf = [0.0] * _GRID
    for w, params in weighted:
        _add_marginals(w, params, grid, (clean_pdf, bug_pdf))
    return _summarise(xs, clean_pdf), _summarise(xs, bug_pdf)


def _add_marginals(
    w: float,
    params: tuple[float, float, float, float],
    grid: tuple[list[float], list[float]],
    pdfs: tuple[list[float], list[float]],
) -> None:
    """Add one (cell, component)'s constrained marginals of both rates, weighted w."""
    a0, b0, a1, b1 = params
    d0 = _density(a0, b0, *grid)
    d1 = _density(a1, b1, *grid)
    below0 = _cumulative(d0)  # P(X0 < x)
    above1 = [1.0 - c for c in _cumulative(d1)]  # P(X1 > x)
    joint0 = [d * a for d, a in zip(d0, above1, strict=True)]
    joint1 = [d * b for d, b in zip(d1, below0, strict=True)]
    z0, z1 = sum(joint0), sum(joint1)
    clean_pdf, bug_pdf = pdfs
    for i in range(_GRID):
        clean_pdf[i] += w * joint0[i] / z0
        bug_pdf[i] += w * joint1[i] / z1


def _density(a: float, b: float, logx: list[float], log1x: list[float]) -> list[float]:
    """Beta(a, b) density at the grid points, normalised to sum to 1 (midpoint rule)."""
    logs = [(a - 1.0) * lx + (b - 1.0) * l1 for lx, l1 in zip(logx, log1x, strict=True)]
    top = max(logs)
    out = [math.exp(v - top) for v in logs]
    total = sum(out)
    return [v / total for v in out]


def _cumulative(pdf: Iterable[float]) -> list[float]:
    """Mass below each grid point (half of its own cell counted)."""
    out, run = [], 0.0
    for v in pdf:
        out.append(run + v / 2.0)
        run += v
    return out


def _summarise(xs: list[float], pdf: list[float]) -> RateSummary:
    total = sum(pdf)
    mean = sum(x * v for x, v in zip(xs, pdf, strict=True)) / total
    low = high = xs[-1]
    run, found_low = 0.0, False
    for x, v in zip(xs, pdf, strict=True):
        run += v / total
        if not found_low and run >= 0.05:
            low, found_low = x, True
        if run >= 0.95:
            high = x
            break
    return RateSummary(estimate=mean, low=low, high=high)
