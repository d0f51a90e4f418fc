"""Simulated hunts for any Search: flaky repro, no builds. Pure but for `random`.

Used by the unit tests (correctness and calibration of the noisy searches) and
by benchmarks/flaky_search.py and rate_change.py. A revision on the bug side
shows the symptom with probability p per run, one on the clean side with
`p_clean` (default 0: one-sided noise, no random draws there); revisions in
`unbuildable` are reported as skips.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from finbisect.search.noisy import NoisyBisection
from finbisect.search.strategy import OLD_END, AnswerStatus, CandidateGraph, Costs, Search

__all__ = ["HuntStats", "Summary", "noisy_factory", "simulate_hunt", "simulate_many"]


@dataclass(frozen=True, kw_only=True)
class HuntStats:
    """What one simulated hunt cost and concluded."""

    truth: int
    status: AnswerStatus
    culprit: int | None
    confidence: float
    calibration_runs: int  # runs at the bug end
    endpoint_runs: int  # runs at the clean end
    search_runs: int  # runs anywhere else
    builds: int  # distinct candidates built during the search (endpoints excluded)
    visits: int

    @property
    def correct(self) -> bool:
        return self.status is AnswerStatus.FOUND and self.culprit == self.truth


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
        new = index != OLD_END and graph.is_new(index, culprit)
        symptoms = 0
        if new == bug_is_new:
            symptoms = sum(rng.random() < p for _ in range(request.runs))
        elif p_clean > 0.0:
            symptoms = sum(rng.random() < p_clean for _ in range(request.runs))
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
