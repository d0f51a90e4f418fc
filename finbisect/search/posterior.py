"""The noisy search's posterior over the culprit, kept as cells of alike candidates.

Candidates that agree on the side of every tested revision share their
symptom and clean counts, hence their weight B(1 + S, 1 + F) with p
integrated out (see noisy.py for the model). A record splits at most each
cell once, and queries cost O(cells), not O(candidates).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from finbisect.search.stats import beta_mixture_quantile, beta_quantile, log_beta
from finbisect.search.strategy import OLD_END, CandidateGraph, bits

__all__ = ["PRIOR_A", "PRIOR_B", "Cell", "CellPosterior", "Snapshot"]

PRIOR_A, PRIOR_B = 1.0, 1.0  # Beta(1, 1) prior on p
_ROBUST_TAIL = 0.1  # robust_mass: p fixed at this lower quantile


class Cell:
    """Candidates on the same side of every tested revision, hence equally likely."""

    __slots__ = ("clean", "lo", "mask", "size", "symptoms")

    def __init__(self, mask: int, symptoms: int = 0, clean: int = 0) -> None:
        self.mask = mask
        self.size = mask.bit_count()
        self.lo = (mask & -mask).bit_length() - 1
        self.symptoms = symptoms
        self.clean = clean


@dataclass(frozen=True)
class Snapshot:
    cells: tuple[Cell, ...]  # sorted by lowest member
    probs: tuple[float, ...]  # mass of each cell
    cum: tuple[float, ...]  # mass of the cells before each one (linear histories)
    los: tuple[int, ...]

    def each(self, i: int) -> float:
        return self.probs[i] / self.cells[i].size


class CellPosterior:
    """P(culprit | runs) as cells; `snapshot()` caches the normalised masses."""

    def __init__(self, graph: CandidateGraph, *, bug_is_new: bool) -> None:
        self.graph = graph
        self.bug_is_new = bug_is_new
        self.linear = graph.is_linear
        self._cells = [Cell(graph.everything)]
        self._snapshot: Snapshot | None = None

    def bug_mask(self, index: int) -> int:
        """Candidates under which `index` is on the bug side."""
        new = 0 if index == OLD_END else self.graph.ancestors[index]
        return new if self.bug_is_new else self.graph.everything & ~new

    def observe(self, index: int, symptoms: int, clean: int, *, first: bool) -> None:
        """Runs at `index`; `first`: the first ones there, which split the cells it cuts."""
        bug = self.bug_mask(index)
        if first:
            cells = []
            for cell in self._cells:
                inside = cell.mask & bug
                if inside and inside != cell.mask:
                    cells.append(Cell(inside, cell.symptoms, cell.clean))
                    cells.append(Cell(cell.mask & ~bug, cell.symptoms, cell.clean))
                else:
                    cells.append(cell)
            self._cells = cells
        kept = []
        for cell in self._cells:
            if cell.mask & bug:
                cell.symptoms += symptoms
                cell.clean += clean
                kept.append(cell)
            elif not symptoms:
                kept.append(cell)
        self._cells = kept
        self._snapshot = None

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            cells = sorted(self._cells, key=lambda c: c.lo)
            logs = [
                math.log(c.size) + log_beta(PRIOR_A + c.symptoms, PRIOR_B + c.clean) for c in cells
            ]
            top = max(logs, default=0.0)
            weights = [math.exp(w - top) for w in logs]
            total = sum(weights)
            probs = tuple(w / total for w in weights)
            cum, run = [], 0.0
            for w in probs:
                cum.append(run)
                run += w
            self._snapshot = Snapshot(tuple(cells), probs, tuple(cum), tuple(c.lo for c in cells))
        return self._snapshot

    def robust_mass(self, post: Snapshot, best: int) -> float:
        """The mass of cell `best`'s candidate with p fixed at its lower quantile."""
        cell = post.cells[best]
        low = beta_quantile(_ROBUST_TAIL, PRIOR_A + cell.symptoms, PRIOR_B + cell.clean)
        logs = [
            math.log(c.size) + c.symptoms * math.log(low) + c.clean * math.log1p(-low)
            for c in post.cells
        ]
        top = max(logs)
        weights = [math.exp(w - top) for w in logs]
        return weights[best] / cell.size / sum(weights)

    def _mass_upto(self, post: Snapshot, x: int) -> float:
        """Mass of candidates <= x on a linear history."""
        i = bisect.bisect_right(post.los, x) - 1
        if i < 0:
            return 0.0
        cell = post.cells[i]
        return post.cum[i] + post.each(i) * min(x - cell.lo + 1, cell.size)

    def bug_mass(self, post: Snapshot, x: int) -> float:
        if self.linear:
            upto = self._mass_upto(post, x)
            return upto if self.bug_is_new else 1.0 - upto
        bug = self.bug_mask(x)
        return sum(
            post.each(i) * (cell.mask & bug).bit_count() for i, cell in enumerate(post.cells)
        )

    def no_symptom(self, post: Snapshot, longest: int) -> list[float]:
        """E[(1-p)^j] under p's posterior, for j = 0..longest."""
        parts = [
            (w, PRIOR_A + c.symptoms, PRIOR_B + c.clean)
            for c, w in zip(post.cells, post.probs, strict=True)
        ]
        parts = [part for part in parts if part[0] > 1e-4] or parts
        total = sum(w for w, _, _ in parts)
        out = [0.0] * (longest + 1)
        for w, a, b in parts:
            term = w / total
            for j in range(longest + 1):
                out[j] += term
                term *= (b + j) / (a + b + j)
        return out

    def rate(self, tail: float) -> tuple[float, float, float]:
        """p at the bug side: posterior mean and `tail`/1-`tail` quantiles (c integrated out)."""
        post = self.snapshot()
        parts = [
            (w, PRIOR_A + c.symptoms, PRIOR_B + c.clean)
            for c, w in zip(post.cells, post.probs, strict=True)
            if w > 1e-6
        ]
        total = sum(w for w, _, _ in parts)
        parts = [(w / total, a, b) for w, a, b in parts]
        mean = sum(w * a / (a + b) for w, a, b in parts)
        return mean, beta_mixture_quantile(tail, parts), beta_mixture_quantile(1.0 - tail, parts)

    def top(self, confidence: float, limit: int) -> list[tuple[int, float]]:
        """Most probable candidates, until `confidence` of the mass or `limit` of them."""
        post = self.snapshot()
        order = sorted(range(len(post.cells)), key=lambda i: -post.each(i))
        out: list[tuple[int, float]] = []
        held = 0.0
        for i in order:
            for c in bits(post.cells[i].mask):
                if held >= confidence or len(out) >= limit:
                    return out
                out.append((c, post.each(i)))
                held += post.each(i)
        return out
