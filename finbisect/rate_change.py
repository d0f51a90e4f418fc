"""Bisection for a rate change: a rare symptom became frequent (two-sided noise). Pure.

The one-sided search (noisy.py) assumes a revision without the bug never
shows the symptom. A finalization race breaks that: it was always there at
1 run in 50, and one commit made it 1 in 3. Here both rates are unknown:
runs on the clean side show the symptom with p_clean, on the bug side with
p_bug > p_clean, and both are integrated out of the posterior over the
culprit exactly (rate_posterior.py). In a regression hunt p_before = p_clean
and p_after = p_bug; in a fix hunt the other way round.

Phases (all requested by `next_request`):

1. The ends, alternately, in small batches: every run there is on a known
   side, so each informs one rate without spending any on the culprit.
   They stop once the ends alone say P(p_clean < p_bug) >= 0.9, or at
   `max_runs_per_revision` each. A bug end with no symptom in all of those
   is a wrong end (the `*_END_*` status). Runs carried over from a
   one-sided start (`from_observations`) count.
2. The search: like the one-sided one, each step scores (revision x, batch b)
   by expected bits about the culprit per second, cost = build (unless x is
   built) + visit + b runs. The bits are the mutual information between the
   side of x and the symptom count of b runs, each side's count a
   beta-binomial under that rate's posterior (so uncertain rates are worth
   less, and the ends' and every other revision's runs inform both rates).
   The batch then requested maximises bits per second without the build.

Stop:
- FOUND: one candidate holds >= `confidence`, also with the rates moved
  pessimistically close together (RatePosterior.robust_mass): a candidate
  held up only by a lucky rate estimate is not named.
- RATES_INSEPARABLE: the rates are too close to separate with the runs left.
  Sound in the direction that matters: with H bits of uncertainty left about
  the culprit, no strategy can finish in fewer than H / C runs, C the
  capacity of the binary channel at the rates; taking the most favourable
  rates the posterior allows (p_clean at its 5% quantile, p_bug at its 95%),
  if H / C exceeds the runs left, finishing is out of reach at any plausible
  rate. When the budget is spent, the answer is RATES_INSEPARABLE too if the
  two rates' 90% intervals still overlap (the runs could not tell them
  apart), BUDGET_SPENT otherwise.
- AMBIGUOUS: as in the one-sided search (unbuildable neighbours).
Inconclusive answers list the top candidates with their probabilities.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

from finbisect.noisy import NoisyBisection
from finbisect.posterior import Snapshot
from finbisect.rate_posterior import (
    RatePosterior,
    RatePrior,
    RateSummary,
    asymmetric_channel_capacity,
    best_bug_mass,
    log_prob_less,
)
from finbisect.stats import beta_quantile
from finbisect.strategy import OLD_END, AnswerStatus, CandidateGraph, SearchRequest, bits

__all__ = ["RateChangeBisection"]

_END_BATCH = 4  # runs per visit to an end
_END_SEPARATION = 0.9  # the ends alone give P(p_clean < p_bug) at least this
_BATCHES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_MIN_MASS = 1e-4  # planning leaves out cells lighter than this x the heaviest
_TARGETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # bug masses to try
_SHORTLIST = 6  # revisions whose batches are weighed (by one run's bits, per second and not)
_EPS = 1e-12


class _Phase(enum.Enum):
    ENDS = "ends"
    SEARCH = "search"
    DONE = "done"


class RateChangeBisection(NoisyBisection):
    """The two-sided search: see the module docstring.

    Same Search protocol, cost hooks (`set_costs`, `record_costs`,
    `mark_built`) and reporting (`posterior`) as NoisyBisection, plus
    `rates()`. `max_runs` counts every recorded run, the ends' included.
    """

    def __init__(
        self,
        graph: CandidateGraph,
        *,
        bug_is_new: bool,
        confidence: float = 0.95,
        max_runs: int = 5000,
        max_runs_per_revision: int = 200,
        prior: RatePrior | None = None,
    ) -> None:
        super().__init__(
            graph,
            bug_is_new=bug_is_new,
            confidence=confidence,
            max_runs=max_runs,
            max_runs_per_revision=max_runs_per_revision,
        )
        self._model: RatePosterior = RatePosterior(graph, bug_is_new=bug_is_new, prior=prior)
        self._stage = _Phase.ENDS

    @classmethod
    def from_observations(
        cls,
        graph: CandidateGraph,
        observations: Mapping[int, tuple[int, int]],
        *,
        bug_is_new: bool,
        skipped: frozenset[int] = frozenset(),
        confidence: float = 0.95,
        max_runs: int = 5000,
        max_runs_per_revision: int = 200,
        prior: RatePrior | None = None,
    ) -> RateChangeBisection:
        """A search that carries on from runs already made: {index: (symptoms, clean)}.

        For switching a one-sided hunt whose clean end showed the symptom:
        all its runs, the ends' first, seed both rates and the culprit's
        posterior; the ends phase goes on only if they do not separate the
        rates yet. Costs and built revisions are the caller's to carry over.
        """
        search = cls(
            graph,
            bug_is_new=bug_is_new,
            confidence=confidence,
            max_runs=max_runs,
            max_runs_per_revision=max_runs_per_revision,
            prior=prior,
        )
        for index, (symptoms, clean) in observations.items():
            if symptoms + clean:
                search.record(index, symptoms=symptoms, clean=clean)
        for index in skipped:
            search.record_skip(index)
        return search

    # -- Search protocol ---------------------------------------------------------------
    def next_request(self) -> SearchRequest | None:
        self._settle()
        if self._stage is _Phase.DONE:
            return None
        left = self.max_runs - self._runs
        if self._stage is _Phase.ENDS:
            end = self._next_end()
            cap = self.max_runs_per_revision - sum(self._stats(end))
            return SearchRequest(end, max(1, min(left, _END_BATCH, cap)))
        request = self._plan()
        if request is None:
            # No revision tells the hypotheses apart at the rates seen so far: the ends can
            # still sharpen the rates, until they are full.
            end = self._next_end()
            cap = self.max_runs_per_revision - sum(self._stats(end))
            if cap > 0:
                return SearchRequest(end, max(1, min(left, _END_BATCH, cap)))
            self._finish(AnswerStatus.AMBIGUOUS, self._top())  # nothing buildable tells more
        return request

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        if symptoms == 0 and clean == 0:
            self.record_skip(index)
            return
        self._runs += symptoms + clean
        self._built.add(index)
        if self._stage is _Phase.DONE:
            return
        self._observe(index, symptoms, clean)
        if self._stage is _Phase.ENDS:
            self._end_phase_over()

    def record_skip(self, index: int) -> None:
        if index in (OLD_END, self.graph.new_end) and self._stage is _Phase.ENDS:
            self._stage = _Phase.SEARCH  # the session refuses unbuildable endpoints itself
        if index != OLD_END:
            self._skipped |= 1 << index
            self._groups = None

    def steps_left(self) -> int:
        if self._stage is _Phase.DONE:
            return 0
        return (2 if self._stage is _Phase.ENDS else 0) + max(1, math.ceil(2 * self._entropy()))

    # -- reporting -----------------------------------------------------------------------
    def rates(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """((p_before, low, high), (p_after, low, high)): means and 90% intervals."""
        clean, bug = self._model.rate_summary()
        before, after = (clean, bug) if self.bug_is_new else (bug, clean)
        return _triple(before), _triple(after)

    def p_estimate(self) -> tuple[float, float, float]:
        """The bug side's rate (as the one-sided search reports p)."""
        return _triple(self._model.rate_summary()[1])

    # -- phases ------------------------------------------------------------------------
    def _next_end(self) -> int:
        """The end with fewer runs (the bug end first): both rates learn at the same pace."""
        ends = (self.bug_end, self.clean_end)
        return min(ends, key=lambda end: (sum(self._stats(end)), ends.index(end)))

    def _end_phase_over(self) -> None:
        (a0, b0), (a1, b1) = self._model.prior.clean, self._model.prior.bug
        s1, f1 = self._stats(self.bug_end)
        s0, f0 = self._stats(self.clean_end)
        cap = self.max_runs_per_revision
        if s1 + f1 >= cap and s1 == 0:
            self._finish(self._end_status(self.bug_end), [])
        elif (s1 + f1 >= cap and s0 + f0 >= cap) or (
            min(s1 + f1, s0 + f0) >= _END_BATCH
            and log_prob_less(a0 + s0, b0 + f0, a1 + s1, b1 + f1) >= math.log(_END_SEPARATION)
        ):
            self._stage = _Phase.SEARCH

    def _settle(self) -> None:
        """Decide whether the search is over, and how."""
        if self._stage is _Phase.DONE:
            return
        if self._runs >= self.max_runs:
            clean, bug = self._model.rate_summary()
            low, high = sorted((clean, bug), key=lambda r: r.estimate)
            overlap = low.high >= high.low
            self._finish(
                AnswerStatus.RATES_INSEPARABLE if overlap else AnswerStatus.BUDGET_SPENT,
                self._top(),
            )
            return
        if self._stage is _Phase.ENDS:
            return
        post = self._model.snapshot()
        best = max(range(len(post.cells)), key=post.each)
        if (
            post.each(best) >= self.confidence
            and self._model.robust_mass(post, best) >= self.confidence
        ):
            self._finish(AnswerStatus.FOUND, [(post.cells[best].lo, post.each(best))])
            return
        if self._hopeless(post):
            self._finish(AnswerStatus.RATES_INSEPARABLE, self._top())
            return
        if self._skipped:
            mass = self.posterior()
            for group in self._ambiguity_groups():
                members = sorted(bits(group), key=lambda c: -mass[c])
                if sum(mass[c] for c in members) >= self.confidence:
                    self._finish(AnswerStatus.AMBIGUOUS, [(c, mass[c]) for c in members])
                    return

    def _finish(self, status: AnswerStatus, top: list[tuple[int, float]]) -> None:
        super()._finish(status, top)
        self._stage = _Phase.DONE

    def _hopeless(self, post: Snapshot) -> bool:
        """Even at the most favourable plausible rates, the runs left cannot find the culprit."""
        (a0, b0), (a1, b1) = self._rate_betas(post)
        p_clean = beta_quantile(0.05, a0, b0)
        p_bug = beta_quantile(0.95, a1, b1)
        left = self.max_runs - self._runs
        if p_bug <= p_clean:
            return True
        return self._entropy() > left * asymmetric_channel_capacity(p_clean, p_bug)

    def _entropy(self) -> float:
        post = self._model.snapshot()
        return -sum(
            w * math.log2(w / c.size) for c, w in zip(post.cells, post.probs, strict=True) if w > 0
        )

    # -- choosing the next visit ---------------------------------------------------------
    def _rate_betas(self, post: Snapshot) -> tuple[tuple[float, float], tuple[float, float]]:
        """Each rate's posterior (c out, the constraint ignored) as one moment-matched Beta."""
        out = []
        for side in (0, 1):
            parts = []
            for cell, w in zip(post.cells, post.probs, strict=True):
                if w >= _MIN_MASS:
                    a0, b0, a1, b1 = self._model.params(cell)
                    parts.append((w, a1, b1) if side else (w, a0, b0))
            total = sum(w for w, _, _ in parts)
            mean = sum(w * a / (a + b) for w, a, b in parts) / total
            second = sum(w * a * (a + 1) / ((a + b) * (a + b + 1)) for w, a, b in parts) / total
            var = max(second - mean * mean, 1e-15)
            size = max(mean * (1.0 - mean) / var - 1.0, 1e-3)
            out.append((max(mean * size, 1e-3), max((1.0 - mean) * size, 1e-3)))
        return out[0], out[1]

    def _plan(self) -> SearchRequest | None:
        post = self._model.snapshot()
        top = max(post.probs)
        cells = [
            (w, self._model.params(c), c)
            for c, w in zip(post.cells, post.probs, strict=True)
            if w >= _MIN_MASS * top
        ]
        total = sum(w for w, _, _ in cells)
        weights = [w / total for w, _, _ in cells]
        longest = min(self.max_runs - self._runs, _BATCHES[-1])
        batches = [b for b in _BATCHES if b <= longest] or [longest]
        options = {x: True for x in self._built if x == OLD_END or 0 <= x < len(self.graph)}
        (a0, b0), (a1, b1) = self._rate_betas(post)
        p0, p1 = a0 / (a0 + b0), a1 / (a1 + b1)
        targets = set(_TARGETS) | {round(best_bug_mass(p0, p1), 3) if p0 < p1 else 0.5}
        for x in self._fresh_options(post, targets):
            options.setdefault(x, False)
        options = {x: b for x, b in options.items() if x == OLD_END or not self._skipped >> x & 1}
        # Screen with one run each (cheap), then weigh batches for the best few.
        params = [p for _, p, _ in cells]
        cache: dict[tuple[int, int, int], list[float]] = {}
        screened = []
        for x, built in options.items():
            bug = self._model.bug_mask(x)
            sides = [(c.mask & bug).bit_count() / c.size for _, _, c in cells]
            fixed = self.visit_seconds + (0.0 if built else self.build_seconds)
            one = _count_information(weights, sides, params, 1, cache)
            screened.append((one / (fixed + self.run_seconds), one, x, fixed, sides))
        if not screened:
            return None
        shortlist = sorted(screened, key=lambda t: -t[0])[:_SHORTLIST]
        shortlist += sorted(screened, key=lambda t: -t[1])[:_SHORTLIST]
        best: tuple[float, int, list[float]] | None = None
        for _, one, x, fixed, sides in shortlist:
            if one <= _EPS:
                continue
            rate = max(
                _count_information(weights, sides, params, b, cache)
                / (fixed + b * self.run_seconds)
                for b in batches
            )
            if best is None or rate > best[0]:
                best = (rate, x, sides)
        if best is None:
            return None
        _, x, sides = best
        _, runs = max(
            (
                _count_information(weights, sides, params, b, cache)
                / (self.visit_seconds + b * self.run_seconds),
                b,
            )
            for b in batches
        )
        return SearchRequest(x, runs)


def _beta_binomial(runs: int, a: float, b: float) -> list[float]:
    """P(k symptoms in `runs` runs) for a rate ~ Beta(a, b), by the ratio of successive terms."""
    first = 1.0
    for i in range(runs):
        first *= (b + i) / (a + b + i)
    out = [first]
    for k in range(runs):
        out.append(out[-1] * (runs - k) / (k + 1) * (a + k) / (b + runs - k - 1))
    return out


def _count_information(
    weights: list[float],
    sides: list[float],
    params: list[tuple[int, int, int, int]],
    runs: int,
    cache: dict[tuple[int, int, int], list[float]],
) -> float:
    """Bits about the culprit from the symptom count of `runs` runs at one revision.

    Each cell predicts the count with its own rate posteriors (beta-binomial),
    on the side the revision is on under it (`sides`: the fraction of the
    cell's members that put it on the bug side). A revision's count tells
    apart hypotheses whose rates differ, so runs at an end are worth
    something exactly when the rates are what the cells disagree on.
    """
    mixed = [0.0] * (runs + 1)
    conditional = 0.0
    for j, (w, f, (a0, b0, a1, b1)) in enumerate(zip(weights, sides, params, strict=True)):
        for side, share, a, b in ((0, 1.0 - f, a0, b0), (1, f, a1, b1)):
            if share <= 0.0:
                continue
            pmf = cache.get((j, side, runs))
            if pmf is None:
                pmf = cache[(j, side, runs)] = _beta_binomial(runs, a, b)
            mass = w * share
            for k, q in enumerate(pmf):
                mixed[k] += mass * q
                if q > 0.0:
                    conditional -= mass * q * math.log2(q)
    return -sum(q * math.log2(q) for q in mixed if q > 0.0) - conditional


def _triple(summary: RateSummary) -> tuple[float, float, float]:
    return summary.estimate, summary.low, summary.high
