"""git_bayesect's method, reimplemented for benchmarks/rate_change.py only (pure Python).

Source: github.com/hauntsaninja/git_bayesect at cda3871 (2026-04-14, release 1.2
plus fixes), README "How it works" and `git_bayesect.py`'s `Bisector`, `cli_run`:

- Positions r = 0..N: r = 0 the new end, r = N the old end (its `--first-parent`
  list between them). Hypothesis B = i: positions r <= i are "new".
- P(fail | new) = p_new, P(fail | old) = p_old, both unknown, independent
  Jeffreys priors Beta(0.5, 0.5) (its defaults since 1.2), no order between
  them ("something has changed at some point in some direction"); uniform
  prior weight 1 on every hypothesis, the old end's included.
- Posterior: P(B = i | data) ∝ B(α + Y_new, β + F_new) · B(α + Y_old, β + F_old)
  (Beta-Bernoulli conjugacy, both rates integrated out).
- Choice: one run at a time, at the position minimising the expected
  posterior entropy after that run, the predictive under each hypothesis being
  its posterior-mean rates (plug-in); ties go to the position nearest N // 2.
- Stop (`git bayesect run --confidence`, default 0.95): as soon as the most
  probable hypothesis holds the confidence. It has no run budget; the
  benchmark applies the same budget as to the others.

Equivalent computation, not the same code: hypotheses between two tested
positions share all counts, so they form blocks; the posterior is a weight per
block, and within a block the expected entropy after a run at position b is
H - [h(A + t·d) - (C + t·e)], t = b - block start, which is convex in t: its
minimum is found in closed form. tests nothing here; `python3
benchmarks/bayesect_check.py` (needs numpy/scipy and a git_bayesect.py
checkout) compares choices and posteriors with the original.
"""

from __future__ import annotations

import bisect
import math

__all__ = ["BayesectModel"]

_JEFFREYS = 0.5


def _h(x: float) -> float:
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return -x * math.log2(x) - (1.0 - x) * math.log2(1.0 - x)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


class BayesectModel:
    """git_bayesect's Bisector over positions 0..n (0 = new end, n = old end)."""

    def __init__(self, positions: int, *, prior: float = _JEFFREYS) -> None:
        self.size = positions  # number of positions, n + 1
        self.alpha = self.beta = prior
        self._tested: list[int] = []  # sorted positions with observations
        self._yes: dict[int, int] = {}
        self._total: dict[int, int] = {}
        self._blocks: list[tuple[int, int, float, float, float]] | None = None

    def record(self, position: int, failed: bool) -> None:
        if position not in self._total:
            bisect.insort(self._tested, position)
            self._yes[position] = self._total[position] = 0
        self._total[position] += 1
        self._yes[position] += int(failed)
        self._blocks = None

    # -- posterior, per block of hypotheses -------------------------------------------
    def blocks(self) -> list[tuple[int, int, float, float, float]]:
        """(first, last, weight of each member, p_new, p_old) per block of hypotheses."""
        if self._blocks is not None:
            return self._blocks
        a, b = self.alpha, self.beta
        yes_all = sum(self._yes.values())
        tot_all = sum(self._total.values())
        starts = sorted({0, *self._tested})
        raw = []
        yes_left = tot_left = 0
        for k, start in enumerate(starts):
            if start in self._total:
                yes_left += self._yes[start]
                tot_left += self._total[start]
            last = starts[k + 1] - 1 if k + 1 < len(starts) else self.size - 1
            yes_right, tot_right = yes_all - yes_left, tot_all - tot_left
            log_l = (
                _log_beta(a + yes_left, b + tot_left - yes_left)
                - _log_beta(a, b)
                + _log_beta(a + yes_right, b + tot_right - yes_right)
                - _log_beta(a, b)
            )
            p_new = (a + yes_left) / (a + b + tot_left)
            p_old = (a + yes_right) / (a + b + tot_right)
            raw.append((start, last, log_l, p_new, p_old))
        top = max(r[2] for r in raw)
        total = sum((last - first + 1) * math.exp(log_l - top) for first, last, log_l, _, _ in raw)
        self._blocks = [
            (first, last, math.exp(log_l - top) / total, p_new, p_old)
            for first, last, log_l, p_new, p_old in raw
        ]
        return self._blocks

    def best(self) -> tuple[int, float]:
        """(position, probability) of the most probable hypothesis, ties nearest the middle."""
        blocks = self.blocks()
        top = max(w for _, _, w, _, _ in blocks)
        near = [(f, la) for f, la, w, _, _ in blocks if math.isclose(w, top, rel_tol=1e-12)]
        mid = self.size // 2
        position = min((_nearest(f, la, mid) for f, la in near), key=lambda r: abs(r - mid))
        return position, top

    def select(self) -> int:
        """The position whose next run minimises the expected posterior entropy."""
        blocks = self.blocks()
        # Totals over all hypotheses of w·p_new, w·h(p_new), and the same for p_old.
        new_yes = sum((la - f + 1) * w * pn for f, la, w, pn, _ in blocks)
        new_h = sum((la - f + 1) * w * _h(pn) for f, la, w, pn, _ in blocks)
        old_yes = old_h = 0.0
        entropy = -sum((la - f + 1) * w * math.log2(w) for f, la, w, _, _ in blocks if w > 0)
        mid = self.size // 2
        found: list[tuple[float, int]] = []
        for f, la, w, pn, po in blocks:
            # b in [f, la]: hypotheses f..b-1 see b as old, b..la (and later blocks) as new.
            a_yes, c_h = old_yes + new_yes, old_h + new_h
            d, e = w * (po - pn), w * (_h(po) - _h(pn))
            for t in _block_candidates(a_yes, d, e, la - f, mid - f):
                x = min(max(a_yes + t * d, 0.0), 1.0)
                found.append((entropy - (_h(x) - (c_h + t * e)), f + t))
            size = la - f + 1
            new_yes -= size * w * pn
            new_h -= size * w * _h(pn)
            old_yes += size * w * po
            old_h += size * w * _h(po)
        low = min(v for v, _ in found)
        ties = [b for v, b in found if math.isclose(v, low, rel_tol=1e-12, abs_tol=1e-15)]
        return min(ties, key=lambda b: abs(b - mid))


def _nearest(first: int, last: int, target: int) -> int:
    return min(max(target, first), last)


def _block_candidates(a: float, d: float, e: float, span: int, middle: int) -> list[int]:
    """Offsets in [0, span] where h(a + t·d) - t·e can be largest (it is concave in t)."""
    if abs(d) < 1e-300:
        # h(a) - t·e: an end of the block, or, when flat, the offset nearest the middle.
        if abs(e) < 1e-300:
            return [min(max(middle, 0), span)]
        return [0] if e > 0 else [span]
    # d·h'(x) = e with h'(x) = log2((1 - x) / x): x = 1 / (1 + 2^(e/d)).
    ratio = e / d
    x = 0.0 if ratio > 1000 else 1.0 if ratio < -1000 else 1.0 / (1.0 + 2.0**ratio)
    t = (x - a) / d
    lo = min(max(math.floor(t), 0), span)
    return sorted({0, span, lo, min(lo + 1, span)})
