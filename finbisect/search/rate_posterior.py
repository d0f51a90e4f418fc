"""The rate-change posterior: both symptom rates unknown, integrated out exactly. Pure.

Model: given the culprit c, each run at a revision on the bug side shows the
symptom with probability p_bug, each run on the clean side with p_clean, and
p_clean < p_bug (the bug side is where the symptom is more frequent). Priors:
p_clean ~ Beta(a0, b0), p_bug ~ Beta(a1, b1), independent but for the order
constraint. With S1/F1 the symptom/clean runs on c's bug side and S0/F0 those
on its clean side, integrating both rates out is exact:

    P(c | runs) ∝ B(a1 + S1, b1 + F1) · B(a0 + S0, b0 + F0) · P(X0 < X1)

with X0 ~ Beta(a0 + S0, b0 + F0) and X1 ~ Beta(a1 + S1, b1 + F1) independent
(the constraint keeps the part of the (p_clean, p_bug) square above the
diagonal). `log_prob_less` gives P(X0 < X1) in closed form, a finite sum
(Cook's / Miller's) whose length is the smallest of the four Beta parameters
it can be written over (usually the clean side's symptoms + 1); the sum needs
that parameter to be a whole number. No grid and no plug-in rates. A clean
prior that is a mixture Σ w_k·Beta(a0k, b0k) gives a sum of such terms, each
over its component's normaliser: the runs weigh the components per candidate.

Candidates on the same side of every tested revision share (S0, F0, S1, F1),
so the posterior is kept in posterior.py's cells; unlike the one-sided model,
a symptom on a candidate's clean side lowers its weight instead of ruling it
out, so cells are only ever split, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from finbisect.search.posterior import Cell, CellPosterior, Snapshot
from finbisect.search.rate_quadrature import RateSummary, summarise_marginals
from finbisect.search.stats import beta_quantile, binary_entropy, log_beta
from finbisect.search.strategy import CandidateGraph

__all__ = [
    "RatePosterior",
    "RatePrior",
    "RateSummary",
    "asymmetric_channel_capacity",
    "best_bug_mass",
    "channel_information",
    "log_prob_less",
]

_LOG_RESCALE = 575.0  # rescale partial sums past e^575 (floats overflow near e^709)
_ROBUST_TAIL = 0.1  # robust_mass: each rate at this quantile on the pessimistic side
_ADAPTIVE_B = (1, 4, 16, 64)  # RatePrior.adaptive: Beta(1, b) components of the clean rate


@dataclass(frozen=True, kw_only=True)
class RatePrior:
    """Beta priors on the clean-side and bug-side rates; the clean one may be a mixture.

    Parameters are positive; the bug side's first one must be a whole number
    (log_prob_less sums over it), the clean side's may be fractions. The
    default is uniform on both. A clean prior leaning to 0, Beta(1/2, 1), saved
    runs at p_clean 0.02 but stated more confidence than its accuracy at
    0.1 -> 0.4 over 1000 hunts, robust_mass notwithstanding, and was slower
    there (benchmarks/README.md): it favours culprits that put the clean
    side's symptoms on the bug side.
    `clean_mixture`, when given, replaces `clean`:
    (weight, a, b) per component, p_clean ~ Σ w·Beta(a, b) (each component
    normalised under the order constraint, so w is its prior mass). It is
    integrated out exactly like a single Beta: the runs weigh the components,
    so a clean side that shows the symptom rarely moves the weight to the
    components near 0 and one that shows it often to the others.
    `adaptive()` is one such mixture, not the default: it saved runs at
    p_clean 0.02, none at 0.1, and stated more confidence than its accuracy
    at 0.1 -> 0.4 (benchmarks/README.md).
    """

    clean: tuple[float, float] = (1.0, 1.0)
    bug: tuple[float, float] = (1.0, 1.0)
    clean_mixture: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        shapes = [x for _, a, b in self.clean_mixture for x in (a, b)]
        if min(*self.clean, *self.bug, *shapes) <= 0:
            raise ValueError("Beta prior parameters must be positive")
        if any(w <= 0 for w, _, _ in self.clean_mixture):
            raise ValueError("mixture weights must be positive")
        if not _whole(self.bug[0]):
            raise ValueError("the bug side's first Beta parameter must be a whole number")

    def components(self) -> tuple[tuple[float, float, float], ...]:
        """(weight, a, b) of each clean-side component, weights summing to 1."""
        parts = self.clean_mixture or ((1.0, *self.clean),)
        total = sum(w for w, _, _ in parts)
        return tuple((w / total, a, b) for w, a, b in parts)

    @classmethod
    def adaptive(cls) -> RatePrior:
        """Clean rate ~ an equal mixture of Beta(1, b), b = 1, 4, 16, 64 (means 1/2 .. 1/65)."""
        return cls(clean_mixture=tuple((1.0, 1.0, float(b)) for b in _ADAPTIVE_B))


# -- closed forms ----------------------------------------------------------------------
def _log_sum(a0: float, b0: float, a1: float, b1: float) -> float:
    """log P(X1 > X0) = log Σ_{i<a1} B(a0+i, b0+b1) / ((b1+i) B(1+i, b1) B(a0, b0)).

    a1 must be a whole number; the terms follow t_{i+1} = t_i (a0+i)(b1+i) / ((i+1)(a0+b0+b1+i)).
    """
    scale = log_beta(a0, b0 + b1) - log_beta(a0, b0)
    total, term, n = 0.0, 1.0, round(a1)
    for i in range(n):
        total += term
        ratio = (a0 + i) * (b1 + i) / ((i + 1) * (a0 + b0 + b1 + i))
        term *= ratio
        # Once the ratio is below 1 it stays there: the n - i - 1 terms left are each smaller.
        if ratio < 1.0 and (n - i) * term < 1e-17 * total:
            break
        if total > math.exp(_LOG_RESCALE):
            total, term = total * math.exp(-_LOG_RESCALE), term * math.exp(-_LOG_RESCALE)
            scale += _LOG_RESCALE
    return scale + math.log(total)


def _whole(x: float) -> bool:
    return x == round(x)


def log_prob_less(a0: float, b0: float, a1: float, b1: float) -> float:
    """log P(X0 < X1) for independent X0 ~ Beta(a0, b0), X1 ~ Beta(a1, b1).

    Four equivalent sums, each over one parameter, which must be a whole
    number (a1 or b0 directly, a0 or b1 for the complement): the shortest is
    used, the complement only when it does not cancel. a1 or b0 must be whole.
    """
    direct = [(n, i) for i, n in enumerate((a1, b0)) if _whole(n)]
    if not direct:
        raise ValueError("log_prob_less needs a whole a1 or b0")
    shortest = min(direct)[0]
    if (a0 < shortest and _whole(a0)) or (b1 < shortest and _whole(b1)):
        # log P(X0 > X1), summed over a0 terms or (on 1 - X) over b1 terms.
        over_a0 = _whole(a0) and (a0 <= b1 or not _whole(b1))
        rest = _log_sum(a1, b1, a0, b0) if over_a0 else _log_sum(b0, a0, b1, a1)
        if rest < -1e-4:  # P(X0 < X1) > 1e-4: 1 - P(X0 > X1) keeps its precision (lgamma: ~1e-12)
            return math.log(-math.expm1(rest))
    if min(direct)[1] == 0:
        return _log_sum(a0, b0, a1, b1)
    return _log_sum(b1, a1, b0, a0)


def channel_information(m: float, p0: float, p1: float) -> float:
    """Bits per run about the side of a revision that is on the bug side with probability m."""
    return (
        binary_entropy(m * p1 + (1.0 - m) * p0)
        - m * binary_entropy(p1)
        - (1.0 - m) * binary_entropy(p0)
    )


def _golden_max(
    f: Callable[[float], float], lo: float = 0.0, hi: float = 1.0
) -> tuple[float, float]:
    """(argmax, max) of a unimodal function on [lo, hi] by golden-section search."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(60):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + g * (hi - lo)
            f2 = f(x2)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - g * (hi - lo)
            f1 = f(x1)
    return (x1, f1) if f1 >= f2 else (x2, f2)


def asymmetric_channel_capacity(p0: float, p1: float) -> float:
    """Capacity in bits per run of the binary channel: input clean → symptom with p0, bug → p1.

    Mutual information is concave in the input distribution, so a golden-section
    search over P(bug side) finds the maximum. p0 = 0 is the Z-channel.
    """
    return _golden_max(lambda m: channel_information(m, p0, p1))[1]


def best_bug_mass(p0: float, p1: float) -> float:
    """The capacity-achieving P(bug side): where a single run tells most."""
    return _golden_max(lambda m: channel_information(m, p0, p1))[0]


# -- the posterior ---------------------------------------------------------------------
class RatePosterior(CellPosterior):
    """P(culprit | runs) with both rates integrated out, kept as cells (see module doc).

    Cells carry the bug-side counts (S1, F1); the clean side's are the totals
    minus those. Inherits the cell bookkeeping queries (bug_mass, top) from
    CellPosterior.
    """

    def __init__(
        self, graph: CandidateGraph, *, bug_is_new: bool, prior: RatePrior | None = None
    ) -> None:
        super().__init__(graph, bug_is_new=bug_is_new)
        self.prior = prior or RatePrior()
        a1, b1 = self.prior.bug
        # log of each component's weight over its normaliser under the order constraint, less
        # the first's (added back in log_evidence): one Beta's weights are then bit for bit
        # what they were before mixtures, so are its hunts' decisions
        bases = [
            (math.log(w) - (log_beta(a, b) + log_beta(a1, b1) + log_prob_less(a, b, a1, b1)), a, b)
            for w, a, b in self.prior.components()
        ]
        self._offset = bases[0][0]
        self._components = [(base - self._offset, a, b) for base, a, b in bases]
        self.symptoms = 0  # all runs recorded, both sides
        self.clean = 0
        # (S1, F1) -> _parts: every cell's counts are read several times between two observations
        self._part_cache: dict[
            tuple[int, int], tuple[list[float], list[tuple[float, float, float, float]]]
        ] = {}

    def observe(self, index: int, symptoms: int, clean: int, *, first: bool) -> None:
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
        for cell in self._cells:
            if cell.mask & bug:
                cell.symptoms += symptoms
                cell.clean += clean
        self.symptoms += symptoms
        self.clean += clean
        self._snapshot = None
        self._part_cache.clear()

    def parts(self, cell: Cell) -> list[tuple[float, tuple[float, float, float, float]]]:
        """Per clean-prior component: (its posterior weight given the cell's culprit,
        (a0, b0, a1, b1): the clean-side and bug-side Beta posteriors, before the constraint)."""
        logs, params = self._parts(cell)
        top = max(logs)
        weights = [math.exp(v - top) for v in logs]
        total = sum(weights)
        return [(w / total, p) for w, p in zip(weights, params, strict=True)]

    def _parts(self, cell: Cell) -> tuple[list[float], list[tuple[float, float, float, float]]]:
        """Each component's log weight and parameters: the same for cells with equal counts."""
        key = (cell.symptoms, cell.clean)
        known = self._part_cache.get(key)
        if known is not None:
            return known
        s1, f1 = cell.symptoms, cell.clean
        a1, b1 = self.prior.bug[0] + s1, self.prior.bug[1] + f1
        s0, f0 = self.symptoms - s1, self.clean - f1
        bug = log_beta(a1, b1)
        logs, params = [], []
        for base, a, b in self._components:
            a0, b0 = a + s0, b + f0
            logs.append(base + log_beta(a0, b0) + bug + log_prob_less(a0, b0, a1, b1))
            params.append((a0, b0, a1, b1))
        self._part_cache[key] = (logs, params)
        return logs, params

    def log_weight(self, cell: Cell) -> float:
        """log of one member's posterior weight: P(runs | it is the culprit)."""
        logs = self._parts(cell)[0]
        top = max(logs)
        return top + math.log(sum(math.exp(v - top) for v in logs))

    def log_evidence(self) -> float:
        """log P(runs | two-sided model), for comparing models."""
        logs = [math.log(c.size) + self.log_weight(c) for c in self._cells]
        top = max(logs)
        total = sum(math.exp(w - top) for w in logs)
        return top + math.log(total) - math.log(len(self.graph)) + self._offset

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            cells = sorted(self._cells, key=lambda c: c.lo)
            logs = [math.log(c.size) + self.log_weight(c) for c in cells]
            top = max(logs)
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
        """Cell `best`'s candidate's mass with the rates fixed closer together than likely.

        p_clean at its 90% quantile and p_bug at its 10% quantile under that
        candidate: evidence weighed at rates this close counts for less, so a
        candidate that still holds the mass is not held up by a lucky rate
        estimate. 0 when those quantiles cross. p_clean's quantile is read
        from the clean side's runs under a uniform prior, whatever the clean
        prior: a prior leaning to 0 is what this check must not trust.
        """
        cell = post.cells[best]
        p0 = beta_quantile(1.0 - _ROBUST_TAIL, *self._clean_by_runs(cell))
        p1 = beta_quantile(_ROBUST_TAIL, *self.parts(cell)[0][1][2:])
        if p0 >= p1:
            return 0.0
        l0, m0, l1, m1 = math.log(p0), math.log1p(-p0), math.log(p1), math.log1p(-p1)
        logs = []
        for c in post.cells:
            s1, f1 = c.symptoms, c.clean
            s0, f0 = self.symptoms - s1, self.clean - f1
            logs.append(math.log(c.size) + s1 * l1 + f1 * m1 + s0 * l0 + f0 * m0)
        top = max(logs)
        weights = [math.exp(w - top) for w in logs]
        return weights[best] / post.cells[best].size / sum(weights)

    def _clean_by_runs(self, cell: Cell) -> tuple[float, float]:
        """The clean rate's Beta posterior under `cell`'s culprit from a uniform prior: what
        the runs alone say, whatever lean the clean prior has."""
        return 1.0 + self.symptoms - cell.symptoms, 1.0 + self.clean - cell.clean

    def moment_betas(
        self, post: Snapshot, *, min_mass: float, trust_clean_prior: bool = True
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """(clean, bug): each rate's posterior (c out, the constraint ignored) as one
        moment-matched Beta, cells lighter than `min_mass` left out; without
        `trust_clean_prior`, the clean rate's as the runs alone say (_clean_by_runs)."""
        clean, bug = [], []
        for cell, w in zip(post.cells, post.probs, strict=True):
            if w < min_mass:
                continue
            parts = self.parts(cell)
            bug += [(w * r, a1, b1) for r, (_, _, a1, b1) in parts]
            if trust_clean_prior:
                clean += [(w * r, a0, b0) for r, (a0, b0, _, _) in parts]
            else:
                clean.append((w, *self._clean_by_runs(cell)))
        return _moment_beta(clean), _moment_beta(bug)

    def rate_summary(self, *, min_mass: float = 1e-6) -> tuple[RateSummary, RateSummary]:
        """(clean side, bug side): posterior means and 90% intervals, c and the other rate out,
        by quadrature (rate_quadrature.py). For reports."""
        post = self.snapshot()
        return summarise_marginals(
            (mass * share, params)
            for cell, mass in zip(post.cells, post.probs, strict=True)
            if mass >= min_mass
            for share, params in self.parts(cell)
        )


def _moment_beta(parts: list[tuple[float, float, float]]) -> tuple[float, float]:
    """The Beta with the mean and variance of a mixture Σ w·Beta(a, b)."""
    total = sum(w for w, _, _ in parts)
    mean = sum(w * a / (a + b) for w, a, b in parts) / total
    second = sum(w * a * (a + 1) / ((a + b) * (a + b + 1)) for w, a, b in parts) / total
    var = max(second - mean * mean, 1e-15)
    size = max(mean * (1.0 - mean) / var - 1.0, 1e-3)
    return max(mean * size, 1e-3), max((1.0 - mean) * size, 1e-3)
