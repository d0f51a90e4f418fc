"""Expected bits about the culprit from b runs at one revision, two-sided model. Pure.

Used by RateChangeBisection's planner. Each cell of the posterior predicts a
revision's symptom count with its own rate posteriors (beta-binomial, a
mixture of them when the clean prior is one), so the information is exact for
the cells kept (no plug-in rates).
"""

from __future__ import annotations

import math

__all__ = ["Part", "Predictive"]

Part = tuple[float, tuple[float, float, float, float]]  # (share, (a0, b0, a1, b1))


class Predictive:
    """Bits about the culprit from the symptom count of b runs at one revision.

    Each cell predicts the count with its own rate posteriors (beta-binomial),
    on the side the revision is on under it: `sides[j]` is the fraction of
    cell j's members that put it on the bug side. A count tells apart
    hypotheses whose rates differ, so runs at an end are worth something
    exactly when the rates are what the cells disagree on. On a linear
    history the sides are a step (1s then 0s, or the reverse, one cell cut),
    and prefix sums over the cells make each evaluation O(b).
    """

    def __init__(self, weights: list[float], parts: list[list[Part]]) -> None:
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.parts = parts  # per cell: (share, (a0, b0, a1, b1)) per clean-prior component
        # runs -> (per-cell pmfs and entropies on each side, and their weighted prefix sums)
        self._tables: dict[
            int,
            tuple[
                list[list[list[float]]],
                list[list[float]],
                list[list[list[float]]],
                list[list[float]],
            ],
        ] = {}

    def symptom_probability(self, sides: list[float]) -> float:
        """P(one run at the revision shows the symptom): each cell's rate on its side."""
        return sum(
            w * r * (s * a1 / (a1 + b1) + (1.0 - s) * a0 / (a0 + b0))
            for w, s, cell in zip(self.weights, sides, self.parts, strict=True)
            for r, (a0, b0, a1, b1) in cell
        )

    def _table(
        self, runs: int
    ) -> tuple[
        list[list[list[float]]], list[list[float]], list[list[list[float]]], list[list[float]]
    ]:
        table = self._tables.get(runs)
        if table is None:
            pmfs: list[list[list[float]]] = [[], []]  # side -> cell -> pmf
            ents: list[list[float]] = [[], []]
            for cell in self.parts:
                for side in (0, 1):
                    pmf = [0.0] * (runs + 1)
                    for r, params in cell:
                        a, b = params[2 * side : 2 * side + 2]
                        pmf = [
                            v + r * q for v, q in zip(pmf, _beta_binomial(runs, a, b), strict=True)
                        ]
                    pmfs[side].append(pmf)
                    ents[side].append(-sum(q * math.log2(q) for q in pmf if q > 0.0))
            pre: list[list[list[float]]] = [[], []]  # side -> k -> sum over cells < k of w·pmf
            pre_h: list[list[float]] = [[], []]
            for side in (0, 1):
                vec, h = [0.0] * (runs + 1), 0.0
                pre[side].append(vec)
                pre_h[side].append(h)
                for j, w in enumerate(self.weights):
                    vec = [v + w * q for v, q in zip(vec, pmfs[side][j], strict=True)]
                    h += w * ents[side][j]
                    pre[side].append(vec)
                    pre_h[side].append(h)
            table = self._tables[runs] = (pmfs, ents, pre, pre_h)
        return table

    def information(self, sides: list[float], runs: int) -> float:
        pmfs, ents, pre, pre_h = self._table(runs)
        m = len(sides)
        step = _step(sides)
        if step is None:  # a merge cut the cells some other way: sum cell by cell
            mixed = [0.0] * (runs + 1)
            conditional = 0.0
            for j, (w, f) in enumerate(zip(self.weights, sides, strict=True)):
                for side, share in ((0, 1.0 - f), (1, f)):
                    if share > 0.0:
                        mass = w * share
                        mixed = [v + mass * q for v, q in zip(mixed, pmfs[side][j], strict=True)]
                        conditional += mass * ents[side][j]
        else:
            first, k, share = step  # cells < k on side `first`, cell k partly, cells > k not
            other = 1 - first
            w = self.weights[k] if k < m else 0.0
            f_first = share if first == 1 else 1.0 - share  # cell k's share on `first`
            lo, hi_full, hi_k = pre[first][k], pre[other][m], pre[other][min(k + 1, m)]
            if k < m:
                own = [
                    w * (f_first * q1 + (1.0 - f_first) * q0)
                    for q1, q0 in zip(pmfs[first][k], pmfs[other][k], strict=True)
                ]
            else:
                own = [0.0] * (runs + 1)
            mixed = [a + b + (c - d) for a, b, c, d in zip(lo, own, hi_full, hi_k, strict=True)]
            conditional = pre_h[first][k] + pre_h[other][m] - pre_h[other][min(k + 1, m)]
            if k < m:
                conditional += w * (f_first * ents[first][k] + (1.0 - f_first) * ents[other][k])
        return -sum(q * math.log2(q) for q in mixed if q > 0.0) - conditional


def _step(sides: list[float]) -> tuple[int, int, float] | None:
    """(side of the leading cells, index of the cut cell, its bug share), or None."""
    m = len(sides)
    if m == 0:
        return None
    first = 1 if sides[0] >= 1.0 else 0
    k = 0
    while k < m and sides[k] == float(first):
        k += 1
    if k < m and any(f != float(1 - first) for f in sides[k + 1 :]):
        return None
    return first, k, sides[k] if k < m else float(first)


def _beta_binomial(runs: int, a: float, b: float) -> list[float]:
    """P(k symptoms in `runs` runs) for a rate ~ Beta(a, b), by the ratio of successive terms."""
    first = 1.0
    for i in range(runs):
        first *= (b + i) / (a + b + i)
    out = [first]
    for k in range(runs):
        out.append(out[-1] * (runs - k) / (k + 1) * (a + k) / (b + runs - k - 1))
    return out
