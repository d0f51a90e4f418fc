"""Simulated hunts for any Search: flaky repro, no builds. Pure but for `random`.

Used by the unit tests (correctness and calibration of the noisy searches) and
by benchmarks/flaky_search.py and rate_change.py; `simulate_rounds` drives a
search in rounds of `next_batch(W)` for W workers (benchmarks/multisection.py).
A revision on the bug side shows the symptom with probability p per run, one on the clean side with
`p_clean` (default 0: one-sided noise, no random draws there); revisions in
`unbuildable` are reported as skips.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from finbisect.search.noisy import NoisyBisection
from finbisect.search.strategy import (
    OLD_END,
    Answer,
    AnswerStatus,
    CandidateGraph,
    Costs,
    Search,
    SearchRequest,
    VisitCost,
)

__all__ = [
    "Concluded",
    "HuntStats",
    "RoundCosts",
    "RoundStats",
    "Summary",
    "noisy_factory",
    "simulate_hunt",
    "simulate_many",
    "simulate_rounds",
]


@dataclass(frozen=True, kw_only=True)
class Concluded:
    """What a simulated hunt concluded, against the truth."""

    truth: int
    status: AnswerStatus
    culprit: int | None
    confidence: float

    @property
    def correct(self) -> bool:
        return self.status is AnswerStatus.FOUND and self.culprit == self.truth

    @classmethod
    def of(cls, answer: Answer, truth: int) -> Concluded:
        return cls(
            truth=truth, status=answer.status, culprit=answer.culprit, confidence=answer.confidence
        )


@dataclass(frozen=True, kw_only=True)
class HuntStats(Concluded):
    """What one simulated hunt cost and concluded."""

    calibration_runs: int  # runs at the bug end
    endpoint_runs: int  # runs at the clean end
    search_runs: int  # runs anywhere else
    builds: int  # distinct candidates built during the search (endpoints excluded)
    visits: int


def simulate_hunt(
    search: Search,
    graph: CandidateGraph,
    *,
    culprit: int,
    p: float,
    bug_is_new: bool,
    rng: random.Random,
    unbuildable: frozenset[int] = frozenset(),
    max_visits: int = 100_000,
    p_clean: float = 0.0,
) -> HuntStats:
    """Drive `search` to its answer against a simulated repro."""
    bug_end = graph.new_end if bug_is_new else OLD_END
    clean_end = OLD_END if bug_is_new else graph.new_end
    runs = {"calibration": 0, "endpoint": 0, "search": 0}
    built: set[int] = set()
    visits = 0
    while visits < max_visits and (request := search.next_request()) is not None:
        visits += 1
        index = request.index
        if index in unbuildable:
            search.record_skip(index)
            continue
        symptoms = _symptoms(
            graph, request, culprit=culprit, rates=(p_clean, p), bug_is_new=bug_is_new, rng=rng
        )
        phase = (
            "calibration" if index == bug_end else "endpoint" if index == clean_end else "search"
        )
        runs[phase] += request.runs
        if phase == "search":
            built.add(index)
        search.record(index, symptoms=symptoms, clean=request.runs - symptoms)
    answer = search.answer()
    return HuntStats(
        truth=culprit,
        status=answer.status,
        culprit=answer.culprit,
        confidence=answer.confidence,
        calibration_runs=runs["calibration"],
        endpoint_runs=runs["endpoint"],
        search_runs=runs["search"],
        builds=len(built),
        visits=visits,
    )


def _symptoms(
    graph: CandidateGraph,
    request: SearchRequest,
    *,
    culprit: int,
    rates: tuple[float, float],
    bug_is_new: bool,
    rng: random.Random,
) -> int:
    """Symptoms in `request.runs` runs; rates: (clean side, bug side)."""
    on_bug_side = (request.index != OLD_END and graph.is_new(request.index, culprit)) == bug_is_new
    if not on_bug_side and rates[0] <= 0.0:
        return 0  # one-sided noise: no draws on the clean side
    rate = rates[on_bug_side]
    return sum(rng.random() < rate for _ in range(request.runs))


@dataclass(frozen=True, kw_only=True)
class RoundCosts:
    """Simulated seconds of a round of visits made at once by `workers` workers.

    A visit costs `visit_seconds`, `build_seconds` if its revision was never
    built in this hunt, and `run_seconds` per run. The round lasts as long as
    its slowest visit. With `split_runs`, workers a round leaves idle (fewer
    visits than workers) share the runs of its visits, the longest first: a
    revision built once serves every worker (a shared build cache), so k
    workers take its build plus ceil(runs / k) runs.
    """

    build_seconds: float
    run_seconds: float
    visit_seconds: float = 0.0
    split_runs: bool = True

    def visit(self, runs: int, *, build: bool, workers: int = 1) -> float:
        fixed = self.visit_seconds + (self.build_seconds if build else 0.0)
        return fixed + math.ceil(runs / workers) * self.run_seconds

    def round(self, visits: Sequence[tuple[int, bool]], workers: int) -> float:
        """Seconds of a round of (runs, needs a build) visits."""
        shares = [1] * len(visits)
        spare = workers - len(visits) if self.split_runs and visits else 0
        for _ in range(max(0, spare)):
            times = [
                self.visit(r, build=b, workers=k) for (r, b), k in zip(visits, shares, strict=True)
            ]
            slowest = max(range(len(visits)), key=times.__getitem__)
            if shares[slowest] >= visits[slowest][0]:
                break  # one run per worker already: more workers do not help
            shares[slowest] += 1
        return max(
            (self.visit(r, build=b, workers=k) for (r, b), k in zip(visits, shares, strict=True)),
            default=0.0,
        )


@dataclass(frozen=True, kw_only=True)
class RoundStats:
    """What one simulated hunt with parallel rounds cost and concluded."""

    result: Concluded
    rounds: int
    visits: int
    runs: int
    builds: int  # distinct revisions built, ends included
    seconds: float  # simulated wall time (RoundCosts)

    @property
    def correct(self) -> bool:
        return self.result.correct


def simulate_rounds(
    search: Search,
    graph: CandidateGraph,
    *,
    workers: int,
    culprit: int,
    p: float,
    rng: random.Random,
    costs: RoundCosts,
    bug_is_new: bool = True,
    p_clean: float = 0.0,
    unbuildable: frozenset[int] = frozenset(),
    max_rounds: int = 100_000,
) -> RoundStats:
    """Drive `search` with `next_batch(workers)`: each round's visits made at once, then
    all recorded (costs too), in the batch's order."""
    built: set[int] = set()
    rounds = visits = runs = 0
    seconds = 0.0
    while rounds < max_rounds and (batch := search.next_batch(workers)):
        rounds += 1
        visits += len(batch)
        shape = []
        for request in batch:
            fresh = request.index not in built and request.index not in unbuildable
            shape.append((0 if request.index in unbuildable else request.runs, fresh))
        seconds += costs.round(shape, workers)
        for request, (made, fresh) in zip(batch, shape, strict=True):
            if request.index in unbuildable:
                search.record_skip(request.index)
                continue
            built.add(request.index)
            runs += made
            symptoms = _symptoms(
                graph, request, culprit=culprit, rates=(p_clean, p), bug_is_new=bug_is_new, rng=rng
            )
            search.record(request.index, symptoms=symptoms, clean=made - symptoms)
            build = costs.build_seconds if fresh else None
            cost = VisitCost(build_seconds=build, run_seconds=made * costs.run_seconds, runs=made)
            search.record_costs(request.index, cost)
    return RoundStats(
        result=Concluded.of(search.answer(), culprit),
        rounds=rounds,
        visits=visits,
        runs=runs,
        builds=len(built),
        seconds=seconds,
    )


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Means over many hunts."""

    hunts: int
    correct: int
    found: int
    calibration_runs: float
    endpoint_runs: float
    search_runs: float
    builds: float

    @property
    def accuracy(self) -> float:
        """Correct culprits over all hunts (inconclusive ones count as wrong)."""
        return self.correct / self.hunts

    @property
    def precision(self) -> float:
        """Correct culprits over hunts that named one: what `confidence` promises."""
        return self.correct / self.found if self.found else 1.0


def simulate_many(
    make: Callable[[CandidateGraph], Search],
    n: int,
    p: float,
    *,
    hunts: int,
    seed: int,
    bug_is_new: bool = True,
    p_clean: float = 0.0,
) -> Summary:
    """`hunts` hunts on a linear history of n candidates, culprits drawn uniformly."""
    rng = random.Random(seed)  # noqa: S311 (simulation)
    graph = CandidateGraph.linear(n)
    results = [
        simulate_hunt(
            make(graph),
            graph,
            culprit=rng.randrange(n),
            p=p,
            bug_is_new=bug_is_new,
            rng=rng,
            p_clean=p_clean,
        )
        for _ in range(hunts)
    ]
    return Summary(
        hunts=hunts,
        correct=sum(r.correct for r in results),
        found=sum(r.status is AnswerStatus.FOUND for r in results),
        calibration_runs=sum(r.calibration_runs for r in results) / hunts,
        endpoint_runs=sum(r.endpoint_runs for r in results) / hunts,
        search_runs=sum(r.search_runs for r in results) / hunts,
        builds=sum(r.builds for r in results) / hunts,
    )


def noisy_factory(
    *,
    build_seconds: float = 300.0,
    run_seconds: float = 5.0,
    visit_seconds: float = 1.0,
    confidence: float = 0.95,
    max_runs: int = 2000,
) -> Callable[[CandidateGraph], Search]:
    """A maker of NoisyBisection searches (regression hunts) with fixed cost estimates."""

    def make(graph: CandidateGraph) -> Search:
        costs = Costs(
            build_seconds=build_seconds, run_seconds=run_seconds, visit_seconds=visit_seconds
        )
        return NoisyBisection(
            graph, bug_is_new=True, confidence=confidence, max_runs=max_runs, costs=costs
        )

    return make
