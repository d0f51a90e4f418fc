"""Bayesian bisection for flaky repros (one-sided noise, unknown rate). Pure: no I/O.

Model: a revision on the clean side never shows the symptom; one on the bug
side shows it with an unknown probability p per run, the same everywhere.
The object of inference is the joint posterior over (culprit c, p), with a
uniform prior on c and Beta(1, 1) on p. Given c, every tested revision is
either on the bug side (its runs are Bernoulli(p) draws) or on the clean side
(any symptom there rules c out). So a consistent candidate's likelihood is
p^S(c) (1-p)^F(c), S/F the symptom and clean runs counted at revisions that
are on the bug side under c, and integrating p out is exact:

    P(c | runs) ∝ [c consistent] · B(1 + S(c), 1 + F(c))

No grid, no point estimate: a clean run at a revision multiplies the candidates that
would put it on the bug side by E[1 - p], with p's uncertainty (calibration runs
included) carried along. Candidates that agree on the side of every tested revision
share S, F and hence their weight, so the posterior is kept as a partition into such
cells (intervals on a linear history); a record refines at most one cell per cell, and
queries cost O(cells), not O(candidates).

Phases (all requested by `next_request`):

1. Calibration at the bug end (`graph.new_end` when `bug_is_new`, else `OLD_END`),
   in batches, until p is bounded from below within a factor of two (calibration.py).
   No symptom within `max_runs_per_revision` runs: the bug end is wrong (`*_END_*`).
2. With `verify`, the clean end gets k = ⌈log(1 - confidence) / log(1 - p_low)⌉ runs
   (capped at `max_runs_per_revision`): were it secretly on the bug side, it would show
   the symptom with probability ≥ confidence. A symptom there: the clean end is wrong.
3. The search. Each step scores (revision x, batch b) by expected information about c
   per second: I = h(m·t) - m·h(t), m the posterior mass that puts x on the bug side and
   t = 1 - E[(1-p)^b] the chance that b runs there show the symptom if it is; cost =
   build (unless x is built) + visit + b·run. The best x wins; the batch then requested
   is the one that maximises information per second *without* the build, which is sunk
   once x is chosen: batches stay small (2 runs at p = 0.5), and later visits to a built
   revision are cheap, so distinct builds stay near log2 N while few runs are wasted
   after a symptom.

Stop: one candidate holds ≥ `confidence` (FOUND); a group of candidates that no
buildable revision can tell apart holds it (AMBIGUOUS, e.g. a culprit next to
unbuildable commits); no buildable revision is informative any more (AMBIGUOUS);
`max_runs` recorded runs spent (BUDGET_SPENT). Inconclusive answers list the top
candidates, most probable first, with probabilities.

Costs: `costs` until measured (300 s, 5 s, 1 s), then running means fed by
`record_costs` (costs.py; symptom runs timed apart: a hang waits, a clean run exits);
revisions recorded or in `mark_built` (cached) cost no build."""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Iterable

from finbisect.models import Rate
from finbisect.search.calibration import TAIL, calibrated, calibration_batch, clean_end_runs
from finbisect.search.costs import CostHooks
from finbisect.search.noisy_batch import noisy_batch
from finbisect.search.posterior import CellPosterior, Snapshot
from finbisect.search.stats import best_split, split_information
from finbisect.search.step_estimate import StepEstimate, entropy_bits
from finbisect.search.strategy import (
    OLD_END,
    Answer,
    AnswerStatus,
    CandidateGraph,
    Costs,
    SearchRequest,
    SearchSummary,
    ambiguity_groups,
    bits,
)

__all__ = ["NoisyBisection"]

_BATCHES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100, 128, 160, 200)
_TOP = 10  # candidates listed in an inconclusive answer
# Bug masses also tried when symptom runs cost more than clean ones (hangs): a split
# that will probably come out clean can give more bits per second than the median.
_CLEAN_LEANING = (0.05, 0.1, 0.2, 0.3, 0.4)
_EPS = 1e-12
_DEFAULT_COSTS = Costs()


class _Phase(enum.Enum):
    CALIBRATE = "calibrate"
    VERIFY = "verify clean end"
    SEARCH = "search"
    DONE = "done"


class NoisyBisection(CostHooks):
    """Probabilistic bisection for a repro that shows the symptom in only some runs.

    See the module docstring for the model, the phases and the cost hooks.
    `record(index, symptoms=, clean=)` accepts any index (endpoints, repeats);
    a record with no counted runs is a skip. `max_runs` counts recorded runs,
    calibration and endpoint runs included.
    """

    def __init__(
        self,
        graph: CandidateGraph,
        *,
        bug_is_new: bool,
        confidence: float = 0.95,
        max_runs: int = 2000,
        max_runs_per_revision: int = 200,
        verify: bool = True,
        costs: Costs = _DEFAULT_COSTS,
    ) -> None:
        if len(graph) == 0:
            raise ValueError("no candidates")
        if not 0.0 < confidence < 1.0:
            raise ValueError("confidence must be between 0 and 1")
        self.graph = graph
        self.bug_is_new = bug_is_new
        self.confidence = confidence
        self.max_runs = max_runs
        self.max_runs_per_revision = max_runs_per_revision
        self.verify = verify
        self.bug_end = graph.new_end if bug_is_new else OLD_END
        self.clean_end = OLD_END if bug_is_new else graph.new_end
        self._model = CellPosterior(graph, bug_is_new=bug_is_new)
        self._tested: dict[int, list[int]] = {}  # index -> [symptoms, clean]
        self._skipped = 0
        self._runs = 0
        self._phase = _Phase.CALIBRATE
        self._estimate = StepEstimate()  # of the search phase's visits (progress)
        self._answer = Answer(AnswerStatus.SEARCHING)
        self._groups: tuple[int, list[int]] = (0, [])  # ambiguity groups of a skip mask
        CostHooks.__init__(self, costs)

    # -- Search protocol ---------------------------------------------------------------
    def next_request(self) -> SearchRequest | None:
        self._settle()
        if self._phase is _Phase.DONE:
            return None
        left = self.max_runs - self._runs
        if self._phase is _Phase.CALIBRATE:
            return SearchRequest(self.bug_end, min(left, self._calibration_batch()))
        if self._phase is _Phase.VERIFY:
            done = self._stats(self.clean_end)[1]
            return SearchRequest(self.clean_end, min(left, self._clean_end_runs() - done))
        request = self._plan()
        if request is None:
            self._finish(AnswerStatus.AMBIGUOUS, self._top())  # nothing buildable tells more
        return request

    def next_batch(self, limit: int) -> tuple[SearchRequest, ...]:
        return noisy_batch(self, limit, batches=_BATCHES)  # this request, then more: see there

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        if symptoms == 0 and clean == 0:
            self.record_skip(index)
            return
        self._runs += symptoms + clean
        self._built.add(index)
        if self._phase is _Phase.DONE:
            return
        if self._phase is _Phase.SEARCH:
            self._estimate.visited(self._entropy())
        if index == self.clean_end and symptoms:
            status = self._end_status(index)
            self._finish(status, [])
            return
        self._observe(index, symptoms, clean)
        if self._phase is _Phase.CALIBRATE and index == self.bug_end:
            s, f = self._stats(index)
            if calibrated(s, f):
                self._phase = _Phase.VERIFY if self.verify else _Phase.SEARCH
            elif s + f >= self.max_runs_per_revision:
                if s == 0:
                    self._finish(self._end_status(index), [])
                else:
                    self._phase = _Phase.VERIFY if self.verify else _Phase.SEARCH
        elif (
            self._phase is _Phase.VERIFY
            and index == self.clean_end
            and self._stats(index)[1] >= self._clean_end_runs()
        ):
            self._phase = _Phase.SEARCH

    def record_skip(self, index: int) -> None:
        if self._phase is _Phase.CALIBRATE and index == self.bug_end:
            self._phase = _Phase.VERIFY if self.verify else _Phase.SEARCH
        elif self._phase is _Phase.VERIFY and index == self.clean_end:
            self._phase = _Phase.SEARCH  # the session refuses unbuildable endpoints itself
        if index != OLD_END:
            self._skipped |= 1 << index

    def answer(self) -> Answer:
        self._settle()
        if self._answer.status is AnswerStatus.SEARCHING:
            top = self._top()
            return Answer(
                AnswerStatus.SEARCHING,
                None,
                tuple(c for c, _ in top),
                tuple(w for _, w in top),
                top[0][1] if top else 0.0,
            )
        return self._answer

    def remaining(self) -> int:
        """Size of the smallest set of candidates holding `confidence` of the mass."""
        if self._answer.culprit is not None:
            return 1
        return len(self._top(limit=len(self.graph)))

    def steps_left(self) -> int:
        if self._phase is _Phase.DONE:
            return 0
        pending = {_Phase.CALIBRATE: 2, _Phase.VERIFY: 1}.get(self._phase, 0)
        return pending + self._estimate.visits_left(self._entropy())

    def _entropy(self) -> float:
        post = self._model.snapshot()
        return entropy_bits(post.probs, [c.size for c in post.cells])

    @property
    def runs_recorded(self) -> int:
        """Runs recorded so far, of the `max_runs` budget (for progress)."""
        return self._runs

    # -- reporting -------------------------------------------------------------------
    def posterior(self) -> list[float]:
        """Posterior probability of each candidate being the culprit."""
        out = [0.0] * len(self.graph)
        post = self._model.snapshot()
        for i, cell in enumerate(post.cells):
            each = post.each(i)
            for c in bits(cell.mask):
                out[c] = each
        return out

    def notes(self) -> tuple[str, ...]:
        return ()

    def summary(self) -> SearchSummary:
        mean, low, high = self.p_estimate()
        return SearchSummary(
            posterior=tuple(self.posterior()), p=Rate(estimate=mean, low=low, high=high)
        )

    def p_estimate(self) -> tuple[float, float, float]:
        """p at the bug side: posterior mean and 5%/95% quantiles (integrated over c)."""
        return self._model.rate(TAIL)

    # -- phases ----------------------------------------------------------------------
    def _stats(self, index: int) -> list[int]:
        return self._tested.get(index, [0, 0])

    def _calibration_batch(self) -> int:
        s, f = self._stats(self.bug_end)
        return calibration_batch(s, f, cap=self.max_runs_per_revision - s - f)

    def _clean_end_runs(self) -> int:
        s, f = self._stats(self.bug_end)
        return clean_end_runs(s, f, self.confidence, cap=self.max_runs_per_revision)

    def _end_status(self, index: int) -> AnswerStatus:
        if index == OLD_END:
            return AnswerStatus.OLD_END_SHOWS_BUG_SIDE
        return AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE

    def _finish(self, status: AnswerStatus, top: list[tuple[int, float]]) -> None:
        self._phase = _Phase.DONE
        culprit = top[0][0] if status is AnswerStatus.FOUND else None
        self._answer = Answer(
            status,
            culprit,
            tuple(c for c, _ in top),
            tuple(w for _, w in top),
            sum(w for _, w in top),
        )

    def _settle(self) -> None:
        """Decide whether the search is over, and how."""
        if self._phase is _Phase.SEARCH:  # settled by the last runs, budget or not
            post = self._model.snapshot()
            if not post.cells:  # contradictory runs: no candidate explains them all
                self._finish(AnswerStatus.AMBIGUOUS, [])
            elif not self._finish_if_found(post):
                self._finish_if_ambiguous()
        if self._phase is not _Phase.DONE and self._runs >= self.max_runs:
            self._finish(AnswerStatus.BUDGET_SPENT, self._top())

    def _finish_if_found(self, post: Snapshot) -> bool:
        """FOUND when one candidate holds `confidence`, also at pessimistic rates."""
        best = max(range(len(post.cells)), key=post.each)
        if (mass := self._found_mass(post, best)) < self.confidence:
            return False
        self._finish(AnswerStatus.FOUND, [(post.cells[best].lo, mass)])
        return True

    def _found_mass(self, post: Snapshot, best: int) -> float:
        """The confidence to test and state: the mass, if it holds at a pessimistic p too."""
        robust = self._model.robust_mass(post, best) >= self.confidence
        return post.each(best) if robust else 0.0

    def _finish_if_ambiguous(self) -> None:
        """AMBIGUOUS when candidates no buildable revision tells apart hold `confidence`."""
        if not self._skipped:  # only unbuildable revisions make candidates inseparable
            return
        mass = self.posterior()
        for group in self._ambiguity_groups():
            members = sorted(bits(group), key=lambda c: -mass[c])
            if sum(mass[c] for c in members) >= self.confidence:
                self._finish(AnswerStatus.AMBIGUOUS, [(c, mass[c]) for c in members])
                return

    def _ambiguity_groups(self) -> list[int]:
        if self._groups[0] != self._skipped:
            self._groups = (self._skipped, ambiguity_groups(self.graph, self._skipped))
        return self._groups[1]

    def _observe(self, index: int, symptoms: int, clean: int) -> None:
        stats = self._tested.setdefault(index, [0, 0])
        self._model.observe(index, symptoms, clean, first=stats == [0, 0])
        stats[0] += symptoms
        stats[1] += clean

    def _top(self, limit: int = _TOP) -> list[tuple[int, float]]:
        """Most probable candidates, until `confidence` of the mass or `limit` of them."""
        return self._model.top(self.confidence, limit)

    # -- choosing the next visit -----------------------------------------------------
    def _fresh_options(self, post: Snapshot, targets: Iterable[float]) -> set[int]:
        """Unbuilt, buildable candidates worth scoring."""
        free = self.graph.everything & ~self._skipped
        if not self._model.linear:
            return {x for x in bits(free) if x not in self._built}
        out: set[int] = set()
        n = len(self.graph)
        for target in targets:
            upto = target if self.bug_is_new else 1.0 - target
            i = max(0, bisect.bisect_right(post.cum, upto) - 1)
            cell = post.cells[i]
            x = cell.lo + max(0, math.ceil((upto - post.cum[i]) / post.each(i)) - 1)
            x = min(x, cell.lo + cell.size - 1)
            for start, step in ((x, -1), (x + 1, 1)):
                y = start
                while 0 <= y < n and (free >> y & 1 == 0 or y in self._built):
                    y += step
                if 0 <= y < n:
                    out.add(y)
        return out

    def _plan(self) -> SearchRequest | None:
        post = self._model.snapshot()
        longest = min(self.max_runs - self._runs, _BATCHES[-1])
        batches = [b for b in _BATCHES if b <= longest]
        no_sym = self._model.no_symptom(post, batches[-1])
        hits = [1.0 - no_sym[b] for b in batches]
        # Runs a batch of b takes if the visit ends at the first symptom (it is re-planned
        # after every batch, and batches are small): sum of P(no symptom in j runs), j < b.
        until = [0.0]
        for q in no_sym:
            until.append(until[-1] + q)
        targets = {round(best_split(t), 3) for t in hits}
        symptom_run, clean_run = self.run_costs()
        if symptom_run > clean_run:
            targets.update(_CLEAN_LEANING)
        options = [(x, True) for x in self._built if 0 <= x < len(self.graph)]
        options = [(x, b) for x, b in options if not self._skipped >> x & 1]
        options += [(x, False) for x in self._fresh_options(post, targets)]
        # A run on the bug side shows the symptom at the rate p, one on the clean side never.
        p = 1.0 - no_sym[1] if len(no_sym) > 1 else 1.0
        bug_run = p * symptom_run + (1.0 - p) * clean_run
        best: tuple[float, int] | None = None
        for x, built in options:
            m = self._model.bug_mass(post, x)
            if not _EPS < m < 1.0 - _EPS:
                continue
            fixed = self.visit_seconds + (0.0 if built else self.build_seconds)
            rate = max(
                split_information(m, t)
                / (fixed + m * until[b] * bug_run + (1.0 - m) * b * clean_run)
                for b, t in zip(batches, hits, strict=True)
            )
            if best is None or rate > best[0]:
                best = (rate, x)
        if best is None:
            return None
        x = best[1]
        m = self._model.bug_mass(post, x)
        run = m * bug_run + (1.0 - m) * clean_run
        _, runs = max(
            (split_information(m, t) / (self.visit_seconds + b * run), b)
            for b, t in zip(batches, hits, strict=True)
        )
        return SearchRequest(x, runs)
