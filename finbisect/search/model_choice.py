"""One-sided or two-sided noise: which model a flaky hunt uses, and when it switches. Pure.

`--model one-sided` is NoisyBisection (a clean revision never shows the
symptom), `two-sided` is RateChangeBisection (both rates unknown), and `auto`
(AutoBisection) starts one-sided, since that is the common case and the
fastest search, and switches to two-sided, keeping every run made so far,
when the evidence says the clean side shows the symptom too:

1. the clean end shows it during its check (one-sided: a wrong end, exit 4;
   here: "the symptom also shows at the good end (k of n runs): hunting for
   the commit that changed its rate"), or
2. the one-sided search is about to name a culprit, but the two-sided model
   explains all the runs better: its marginal likelihood (both rates
   integrated out, Occam's factor included) beats the one-sided one's. A
   rare symptom on the clean side makes the one-sided model rule out the
   true culprit and converge elsewhere with high confidence; the comparison
   catches that before a wrong commit is named. When the clean side never
   shows the symptom, the one-sided model wins by about the number of clean
   runs there, so true one-sided hunts finish as before.

With `confirm`, a one-sided answer is then checked two-sided (CONFIRM); the
clean rate's prior there leans to 0 (`confirm_prior`), since the runs so far
favoured a silent clean side.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from finbisect.search.noisy import NoisyBisection
from finbisect.search.posterior import PRIOR_A, PRIOR_B, CellPosterior
from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.rate_posterior import RatePosterior, RatePrior
from finbisect.search.stats import log_beta
from finbisect.search.strategy import (
    OLD_END,
    Answer,
    AnswerStatus,
    CandidateGraph,
    Costs,
    SearchRequest,
    SearchSummary,
    VisitCost,
)

__all__ = [
    "AutoBisection",
    "Model",
    "Reason",
    "Switch",
    "one_sided_log_evidence",
    "two_sided_favoured",
]

_DEFAULT_COSTS = Costs()
# The check of a one-sided answer: the runs favoured a silent clean side, so its rate's
# prior leans to 0 (benchmarks/README.md: fewer runs to confirm, the same accuracy).
_CONFIRM_PRIOR = RatePrior(clean=(0.75, 1.0))


class Model(enum.Enum):
    ONE_SIDED = "one-sided"
    TWO_SIDED = "two-sided"
    AUTO = "auto"


class Reason(enum.Enum):
    CLEAN_END = "clean end"  # the clean end showed the symptom during its check
    EVIDENCE = "evidence"  # the runs fit two rates better than one
    CONFIRM = "confirm"  # the one-sided answer, checked without assuming a silent clean side


@dataclass(frozen=True, kw_only=True)
class Switch:
    """Why an auto hunt went two-sided, with the clean end's counts at that moment."""

    reason: Reason
    clean_end: int  # OLD_END or the new end's index
    symptoms: int
    runs: int
    log_bayes_factor: float  # log P(runs | two-sided) - log P(runs | one-sided)

    def message(self, end_name: str = "good") -> str:
        if self.reason is Reason.CONFIRM:
            return (
                "checking the answer without assuming that the "
                f"{end_name} side never shows the symptom (two-sided model)"
            )
        if self.reason is Reason.CLEAN_END:
            where = f"at the {end_name} end ({self.symptoms} of {self.runs} runs)"
        else:
            factor = math.exp(min(self.log_bayes_factor, 700.0))
            where = f"on the {end_name} side (two rates fit the runs {factor:.3g}x better than one)"
        return f"the symptom also shows {where}: hunting for the commit that changed its rate"


def one_sided_log_evidence(
    graph: CandidateGraph, observations: dict[int, list[int]], *, bug_is_new: bool
) -> float:
    """log P(runs | one-sided model): clean side never shows it, p ~ Beta(1, 1) on the bug side."""
    model = CellPosterior(graph, bug_is_new=bug_is_new)
    for index, (symptoms, clean) in observations.items():
        model.observe(index, symptoms, clean, first=True)
    cells = model.snapshot().cells
    if not cells:
        return -math.inf
    logs = [math.log(c.size) + log_beta(PRIOR_A + c.symptoms, PRIOR_B + c.clean) for c in cells]
    top = max(logs)
    total = sum(math.exp(v - top) for v in logs)
    return top + math.log(total) - math.log(len(graph)) - log_beta(PRIOR_A, PRIOR_B)


def two_sided_favoured(
    graph: CandidateGraph, observations: dict[int, list[int]], *, bug_is_new: bool
) -> float:
    """log Bayes factor of two-sided over one-sided noise for these runs (> 0: two-sided)."""
    model = RatePosterior(graph, bug_is_new=bug_is_new)
    for index, (symptoms, clean) in observations.items():
        model.observe(index, symptoms, clean, first=True)
    return model.log_evidence() - one_sided_log_evidence(graph, observations, bug_is_new=bug_is_new)


class AutoBisection:
    """`--model auto`: the one-sided search, switching to two-sided on evidence (module doc).

    The Search protocol, forwarded to whichever search is current (`inner`);
    `switch` says whether and why it changed, for the session to report.
    """

    def __init__(
        self,
        graph: CandidateGraph,
        *,
        bug_is_new: bool,
        confidence: float = 0.95,
        max_runs: int = 5000,
        max_runs_per_revision: int = 200,
        verify: bool = True,
        costs: Costs = _DEFAULT_COSTS,
        confirm: bool = True,
        confirm_prior: RatePrior = _CONFIRM_PRIOR,
    ) -> None:
        self.graph = graph
        self.confirm = confirm
        self.confirm_prior = confirm_prior
        self.bug_is_new = bug_is_new
        self.confidence = confidence
        self.max_runs = max_runs
        self.max_runs_per_revision = max_runs_per_revision
        self.inner: NoisyBisection = NoisyBisection(
            graph,
            bug_is_new=bug_is_new,
            confidence=confidence,
            max_runs=max_runs,
            max_runs_per_revision=max_runs_per_revision,
            verify=verify,
            costs=costs,
        )
        self.switch: Switch | None = None
        self.clean_end = OLD_END if bug_is_new else graph.new_end
        self._observations: dict[int, list[int]] = {}
        self._skipped: set[int] = set()
        self._built: set[int] = set()

    # -- the switch ------------------------------------------------------------------
    def _go_two_sided(self, reason: Reason, log_factor: float) -> None:
        symptoms, clean = self._observations.get(self.clean_end, [0, 0])
        self.switch = Switch(
            reason=reason,
            clean_end=self.clean_end,
            symptoms=symptoms,
            runs=symptoms + clean,
            log_bayes_factor=log_factor,
        )
        one_sided = self.inner
        self.inner = RateChangeBisection.from_observations(
            self.graph,
            {i: (s, f) for i, (s, f) in self._observations.items()},
            bug_is_new=self.bug_is_new,
            skipped=frozenset(self._skipped),
            confidence=self.confidence,
            max_runs=self.max_runs,
            max_runs_per_revision=self.max_runs_per_revision,
            prior=self.confirm_prior if reason is Reason.CONFIRM else None,
            costs=Costs(
                build_seconds=one_sided.build_seconds,
                run_seconds=one_sided.run_seconds,
                visit_seconds=one_sided.visit_seconds,
            ),
        )
        self.inner.mark_built(self._built)

    # -- Search protocol ---------------------------------------------------------------
    def next_request(self) -> SearchRequest | None:
        request = self.inner.next_request()
        if request is None and self.switch is None:
            status = self.inner.answer().status
            if status in (AnswerStatus.FOUND, AnswerStatus.AMBIGUOUS):
                factor = two_sided_favoured(
                    self.graph, self._observations, bug_is_new=self.bug_is_new
                )
                if factor > 0.0 or self.confirm:
                    self._go_two_sided(Reason.EVIDENCE if factor > 0 else Reason.CONFIRM, factor)
                    return self.inner.next_request()
        return request

    def next_batch(self, limit: int) -> tuple[SearchRequest, ...]:
        """The current model's round, after the switch if `next_request` makes it."""
        request = self.next_request()
        if request is None or limit <= 1:
            return () if request is None else (request,)
        return self.inner.next_batch(limit)

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        if symptoms + clean:
            counts = self._observations.setdefault(index, [0, 0])
            counts[0] += symptoms
            counts[1] += clean
            self._built.add(index)
        self.inner.record(index, symptoms=symptoms, clean=clean)
        if (
            self.switch is None
            and index == self.clean_end
            and symptoms
            and self.inner.answer().status
            in (AnswerStatus.OLD_END_SHOWS_BUG_SIDE, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE)
        ):
            self._go_two_sided(Reason.CLEAN_END, math.inf)

    def record_skip(self, index: int) -> None:
        self._skipped.add(index)
        self.inner.record_skip(index)

    def answer(self) -> Answer:
        return self.inner.answer()

    def remaining(self) -> int:
        return self.inner.remaining()

    def steps_left(self) -> int:
        return self.inner.steps_left()

    def record_costs(self, index: int, cost: VisitCost) -> None:
        self._built.add(index)
        self.inner.record_costs(index, cost)

    def mark_built(self, indices: Iterable[int]) -> None:
        indices = list(indices)
        self._built.update(indices)
        self.inner.mark_built(indices)

    def summary(self) -> SearchSummary:
        return self.inner.summary()

    def notes(self) -> tuple[str, ...]:
        if self.switch is None:
            return ()
        return (self.switch.message("good" if self.bug_is_new else "bad"),)

    def posterior(self) -> list[float]:
        return self.inner.posterior()
