"""Bisection for a rate change: a rare symptom became frequent (two-sided noise). Pure.

The one-sided search (noisy.py) assumes a revision without the bug never
shows the symptom. A finalization race breaks that: it was always there at
1 run in 50, and one commit made it 1 in 3. Here both rates are unknown:
runs on the clean side show the symptom with p_clean, on the bug side with
p_bug > p_clean, and both are integrated out of the posterior over the
culprit exactly (rate_posterior.py), RatePrior()'s priors unless `prior`
says otherwise (uniform on both).
Regression: p_before = p_clean; fix: p_before = p_bug.

Phases (all requested by `next_request`):

1. The ends, one small batch each: every run there informs one rate. Only
   a start: the search comes back to an end whenever the hypotheses disagree
   on the rates, or when no revision is informative yet (a longer fixed
   phase cost more runs than it saved). A bug end with no symptom in
   `max_runs_per_revision` runs is a wrong end (the `*_END_*` status). Runs
   carried over from a one-sided start (`from_observations`) count.
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
  held up only by a lucky rate estimate is not named. The lower mass is
  the confidence stated.
- RATES_INSEPARABLE: the rates are too close for the budget to separate.
  Sound in the direction that matters: finding one of N candidates takes
  log2 N bits, and no strategy averages more than C bits per run, C the
  capacity of the binary channel at the rates; at the most favourable rates
  the posterior allows (p_clean at its 5% quantile, p_bug at its 95%), if
  log2 N / C exceeds `max_runs`, no plausible pair of rates lets the budget
  suffice, and the hunt stops as soon as that is known instead of burning the
  budget. When the budget is spent, the same test says whether the rates
  (RATES_INSEPARABLE) or the budget (BUDGET_SPENT) was short.
- AMBIGUOUS: as in the one-sided search (unbuildable neighbours).
Inconclusive answers list the top candidates with their probabilities.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

from finbisect.models import Rate
from finbisect.search.noisy import NoisyBisection
from finbisect.search.noisy_batch import beta_quiet, noisy_batch
from finbisect.search.posterior import Snapshot
from finbisect.search.rate_information import Predictive
from finbisect.search.rate_posterior import (
    RatePosterior,
    RatePrior,
    RateSummary,
    asymmetric_channel_capacity,
    best_bug_mass,
)
from finbisect.search.stats import beta_cdf, beta_quantile
from finbisect.search.strategy import (
    OLD_END,
    AnswerStatus,
    CandidateGraph,
    Costs,
    SearchRequest,
    SearchSummary,
)

__all__ = ["RateChangeBisection"]

_END_BATCH = 2  # runs per visit to an end outside the search's own choice
_BATCHES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_MIN_MASS = 1e-4  # planning leaves out cells lighter than this x the heaviest
_TARGETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # bug masses to try
_SHORTLIST = 6  # revisions whose batches are weighed (by one run's bits, per second and not)
_EPS = 1e-12
_DEFAULT_COSTS = Costs()
_ALIKE_MIN_RUNS = 4  # runs at the clean end before it may be called like the bug end
_ALIKE_PROBABILITY = 0.99


class _Phase(enum.Enum):
    ENDS = "ends"
    SEARCH = "search"
    DONE = "done"


class RateChangeBisection(NoisyBisection):
    """The two-sided search: see the module docstring.

    Same Search protocol, cost hooks (`costs`, `record_costs`, `mark_built`)
    and reporting (`posterior`) as NoisyBisection, plus `rates()`. `max_runs`
    counts every recorded run, the ends' included. `prior` defaults to
    RatePrior() (RatePrior.adaptive() is an option: benchmarks/README.md).
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
        costs: Costs = _DEFAULT_COSTS,
    ) -> None:
        super().__init__(
            graph,
            bug_is_new=bug_is_new,
            confidence=confidence,
            max_runs=max_runs,
            max_runs_per_revision=max_runs_per_revision,
            costs=costs,
        )
        prior = prior or RatePrior()
        self._model: RatePosterior = RatePosterior(graph, bug_is_new=bug_is_new, prior=prior)
        self._stage = _Phase.ENDS
        self._next_check = 0  # runs at which to test for inseparable rates next

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
        costs: Costs = _DEFAULT_COSTS,
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
            costs=costs,
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

    def next_batch(self, limit: int) -> tuple[SearchRequest, ...]:
        """As the one-sided search's (noisy_batch.py), each side with its own rate."""
        return noisy_batch(self, limit, batches=_BATCHES, quiet=self._quiet)

    def _quiet(self, post: Snapshot, longest: int) -> tuple[list[float], list[float]]:
        (a0, b0), (a1, b1) = self._rate_betas(post)
        return beta_quiet(a0, b0, longest), beta_quiet(a1, b1, longest)

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        if symptoms == 0 and clean == 0:
            self.record_skip(index)
            return
        self._runs += symptoms + clean
        self._built.add(index)
        if self._stage is _Phase.DONE:
            return
        self._observe(index, symptoms, clean)
        if self._stage is _Phase.ENDS or index == self.bug_end:
            self._end_phase_over()

    def record_skip(self, index: int) -> None:
        if index in (OLD_END, self.graph.new_end) and self._stage is _Phase.ENDS:
            self._stage = _Phase.SEARCH  # the session refuses unbuildable endpoints itself
        if index != OLD_END:
            self._skipped |= 1 << index

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

    def summary(self) -> SearchSummary:
        before, after = self.rates()
        bug = before if not self.bug_is_new else after
        return SearchSummary(
            posterior=tuple(self.posterior()),
            p=Rate(estimate=bug[0], low=bug[1], high=bug[2]),
            p_before=Rate(estimate=before[0], low=before[1], high=before[2]),
            p_after=Rate(estimate=after[0], low=after[1], high=after[2]),
        )

    def p_estimate(self) -> tuple[float, float, float]:
        """The bug side's rate (as the one-sided search reports p)."""
        return _triple(self._model.rate_summary()[1])

    # -- phases ------------------------------------------------------------------------
    def _next_end(self) -> int:
        """The end with fewer runs (the bug end first): both rates learn at the same pace."""
        ends = (self.bug_end, self.clean_end)
        return min(ends, key=lambda end: (sum(self._stats(end)), ends.index(end)))

    def _end_phase_over(self) -> None:
        s1, f1 = self._stats(self.bug_end)
        s0, f0 = self._stats(self.clean_end)
        if s1 + f1 >= self.max_runs_per_revision and s1 == 0:
            self._finish(self._end_status(self.bug_end), [])
        elif ends_alike(s0, f0, s1, f1):
            # Not a rate change to hunt: the "clean" end shows the symptom about as often.
            self._finish(self._end_status(self.clean_end), [])
        elif self._stage is _Phase.ENDS and min(s1 + f1, s0 + f0) >= _END_BATCH:
            self._stage = _Phase.SEARCH

    def _settle(self) -> None:
        """Decide whether the search is over, and how."""
        if self._stage is _Phase.DONE:
            return
        post = self._model.snapshot()
        # Found first: the run that spends the budget may be the one that settles it.
        if self._stage is not _Phase.ENDS and self._finish_if_found(post):
            return
        if self._runs >= self.max_runs:
            inseparable = self._stage is _Phase.ENDS or self._inseparable(post)
            status = AnswerStatus.RATES_INSEPARABLE if inseparable else AnswerStatus.BUDGET_SPENT
            self._finish(status, self._top())
            return
        if self._stage is _Phase.ENDS:
            return
        if self._runs >= self._next_check:  # the test costs two Beta quantiles: now and then
            self._next_check = self._runs + max(1, self._runs // 20)
            if self._inseparable(post):
                self._finish(AnswerStatus.RATES_INSEPARABLE, self._top())
                return
        self._finish_if_ambiguous()

    def _finish(self, status: AnswerStatus, top: list[tuple[int, float]]) -> None:
        super()._finish(status, top)
        self._stage = _Phase.DONE

    def _found_mass(self, post: Snapshot, best: int) -> float:
        """The lower of the mass and the mass at pessimistic rates (plug-in, not integrated:
        it can be the higher), so the confidence stated holds at those rates too."""
        return min(post.each(best), self._model.robust_mass(post, best))

    def _inseparable(self, post: Snapshot) -> bool:
        """Even at the most favourable plausible rates, the whole budget could not find it.
        Plausible by the runs: the clean rate's quantile is not lowered by its prior's lean."""
        (a0, b0), (a1, b1) = self._rate_betas(post, trust_clean_prior=False)
        p_clean = beta_quantile(0.05, a0, b0)
        p_bug = beta_quantile(0.95, a1, b1)
        if p_bug <= p_clean:
            return True
        capacity = asymmetric_channel_capacity(p_clean, p_bug)
        return math.log2(len(self.graph)) > self.max_runs * capacity

    def _entropy(self) -> float:
        post = self._model.snapshot()
        return -sum(
            w * math.log2(w / c.size) for c, w in zip(post.cells, post.probs, strict=True) if w > 0
        )

    # -- choosing the next visit ---------------------------------------------------------
    def _rate_betas(
        self, post: Snapshot, *, trust_clean_prior: bool = True
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        return self._model.moment_betas(
            post, min_mass=_MIN_MASS, trust_clean_prior=trust_clean_prior
        )

    def _plan(self) -> SearchRequest | None:
        post = self._model.snapshot()
        top = max(post.probs)
        kept = [(c, w) for c, w in zip(post.cells, post.probs, strict=True) if w >= _MIN_MASS * top]
        predict = Predictive([w for _, w in kept], [self._model.parts(c) for c, _ in kept])
        longest = min(self.max_runs - self._runs, _BATCHES[-1])
        batches = [b for b in _BATCHES if b <= longest] or [longest]
        options = {x: True for x in self._built if x == OLD_END or 0 <= x < len(self.graph)}
        (a0, b0), (a1, b1) = self._rate_betas(post)
        p0, p1 = a0 / (a0 + b0), a1 / (a1 + b1)
        targets = set(_TARGETS) | {round(best_bug_mass(p0, p1), 3) if p0 < p1 else 0.5}
        for x in self._fresh_options(post, targets):
            options.setdefault(x, False)
        # Screen with one run each (cheap), then weigh batches for the best few. A run's
        # cost depends on whether it will probably show the symptom (a hang waits).
        symptom_run, clean_run = self.run_costs()
        screened = []
        for x, built in options.items():
            if x != OLD_END and self._skipped >> x & 1:
                continue
            bug = self._model.bug_mask(x)
            sides = [(c.mask & bug).bit_count() / c.size for c, _ in kept]
            fixed = self.visit_seconds + (0.0 if built else self.build_seconds)
            q = predict.symptom_probability(sides)
            run = q * symptom_run + (1.0 - q) * clean_run
            one = predict.information(sides, 1)
            screened.append((one / (fixed + run), one, x, fixed, sides, run))
        shortlist = sorted(screened, key=lambda t: -t[0])[:_SHORTLIST]
        shortlist += sorted(screened, key=lambda t: -t[1])[:_SHORTLIST]
        best: tuple[float, int, list[float], float] | None = None
        for _, one, x, fixed, sides, run in shortlist:
            if one <= _EPS:
                continue
            rate = _best_batch(predict, sides, batches, fixed, run)[0]
            if best is None or rate > best[0]:
                best = (rate, x, sides, run)
        if best is None:
            return None
        _, x, sides, run = best
        runs = _best_batch(predict, sides, batches, self.visit_seconds, run)[1]
        return SearchRequest(x, runs)


def _best_batch(
    predict: Predictive, sides: list[float], batches: list[int], fixed: float, run: float
) -> tuple[float, int]:
    """(bits per second, batch) of the best batch; bits per second is unimodal in the batch
    (concave bits over affine seconds), so the scan stops once it falls twice in a row."""
    best = (-1.0, batches[0])
    falls = 0
    for b in batches:
        rate = predict.information(sides, b) / (fixed + b * run)
        if rate > best[0]:
            best, falls = (rate, b), 0
        else:
            falls += 1
            if falls >= 2:
                break
    return best


def ends_alike(s0: int, f0: int, s1: int, f1: int) -> bool:
    """Does the clean end show the symptom confidently at least half as often as the bug
    end? (Beta(1 + s, 1 + f) posteriors; a rate change worth hunting is larger.)"""
    if s0 == 0 or s0 + f0 < _ALIKE_MIN_RUNS:
        return False
    return prob_above_half(1 + s0, 1 + f0, 1 + s1, 1 + f1) >= _ALIKE_PROBABILITY


def prob_above_half(a0: float, b0: float, a1: float, b1: float) -> float:
    """P(X0 > X1 / 2) for independent X0 ~ Beta(a0, b0), X1 ~ Beta(a1, b1), by quadrature."""
    steps = 400
    total = 0.0
    for i in range(steps):  # midpoint rule over X1, in probability space
        lo, hi = i / steps, (i + 1) / steps
        weight = beta_cdf(hi, a1, b1) - beta_cdf(lo, a1, b1)
        if weight > 1e-12:
            total += weight * (1.0 - beta_cdf((lo + hi) / 4, a0, b0))
    return total


def _triple(summary: RateSummary) -> tuple[float, float, float]:
    return summary.estimate, summary.low, summary.high
