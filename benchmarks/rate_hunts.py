"""One simulated rate-change hunt, by each method rate_change.py compares.

The Task a worker process is given and the Hunt it returns, and the runners
for one seed: finbisect's RateChangeBisection, git_bayesect's loop (the
reimplementation in bayesect_model.py) and, for `rate_change.py --models`,
the one-sided search or auto (METHODS); `simulate` drives any search on the
seed's culprit and runs (the naive-k baseline's runner, in naive_k.py, too).
rate_change.py runs Tasks on its worker pool and reports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bayesect_model import BayesectModel

from finbisect.search.model_choice import AutoBisection
from finbisect.search.noisy import NoisyBisection
from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.rate_posterior import RatePrior
from finbisect.search.strategy import AnswerStatus, CandidateGraph, Costs, Search
from finbisect.testing.simulate import HuntStats, simulate_hunt

METHODS = ("one-sided", "auto-evidence", "auto")


@dataclass(frozen=True, kw_only=True)
class Hunt:
    """One simulated hunt's outcome."""

    named: bool
    correct: bool
    confidence: float
    runs: int
    builds: int  # distinct revisions run (endpoints included)


@dataclass(frozen=True, kw_only=True)
class Task:
    method: str  # "finbisect", "git_bayesect" or "naive:K"
    n: int
    p0: float
    p1: float
    seeds: tuple[int, ...]
    max_runs: int
    confidence: float
    build_seconds: float
    run_seconds: float
    visit_seconds: float = 1.0
    clean_prior: str = "default"  # "A,B": one Beta, "adaptive", or RatePrior()'s


def _costs(task: Task) -> Costs:
    return Costs(
        build_seconds=task.build_seconds,
        run_seconds=task.run_seconds,
        visit_seconds=task.visit_seconds,
    )


def prior_of(spec: str) -> RatePrior:
    if spec == "default":
        return RatePrior()
    if spec == "adaptive":
        return RatePrior.adaptive()
    a, b = (float(v) for v in spec.split(","))
    return RatePrior(clean=(a, b))


def culprit_of(seed: int, n: int) -> int:
    return random.Random(seed).randrange(n)


def simulate(task: Task, seed: int, search: Search, graph: CandidateGraph) -> HuntStats:
    """Drive `search` on `graph` to its answer: the culprit and the runs drawn from `seed`."""
    return simulate_hunt(
        search,
        graph,
        culprit=culprit_of(seed, task.n),
        p=task.p1,
        p_clean=task.p0,
        bug_is_new=True,
        rng=random.Random(seed + 1),
    )


def stated(stats: HuntStats) -> Hunt:
    """The Hunt of a search that states its confidence (all but the naive baseline)."""
    named = stats.status is AnswerStatus.FOUND
    return Hunt(
        named=named,
        correct=stats.correct,
        confidence=stats.confidence if named else 0.0,
        runs=stats.calibration_runs + stats.endpoint_runs + stats.search_runs,
        builds=stats.builds + 2,
    )


def run_finbisect(task: Task, seed: int) -> Hunt:
    graph = CandidateGraph.linear(task.n)
    search = RateChangeBisection(
        graph,
        bug_is_new=True,
        confidence=task.confidence,
        max_runs=task.max_runs,
        costs=_costs(task),
        prior=prior_of(task.clean_prior),
    )
    return stated(simulate(task, seed, search, graph))


def run_bayesect(task: Task, seed: int) -> Hunt:
    """git_bayesect's loop (`cli_run`): positions 0 = new end .. N = old end."""
    n = task.n
    truth = n - 1 - culprit_of(seed, n)  # position of the culprit
    rng = random.Random(seed + 1)
    model = BayesectModel(n + 1)
    visited: set[int] = set()
    runs = 0
    while True:
        position, probability = model.best()
        if probability >= task.confidence:
            correct = position == truth
            return Hunt(
                named=True, correct=correct, confidence=probability, runs=runs, builds=len(visited)
            )
        if runs >= task.max_runs:
            return Hunt(named=False, correct=False, confidence=0.0, runs=runs, builds=len(visited))
        position = model.select()
        visited.add(position)
        rate = task.p1 if position <= truth else task.p0
        model.record(position, rng.random() < rate)
        runs += 1


def run_model(task: Task, seed: int) -> Hunt:
    """--models: today's one-sided search, or auto (one-sided, switching to two-sided)."""
    graph = CandidateGraph.linear(task.n)
    search: NoisyBisection | AutoBisection
    if task.method == "one-sided":
        search = NoisyBisection(graph, bug_is_new=True, max_runs=task.max_runs, costs=_costs(task))
    else:
        search = AutoBisection(
            graph,
            bug_is_new=True,
            max_runs=task.max_runs,
            costs=_costs(task),
            confirm=task.method == "auto",
        )
    return stated(simulate(task, seed, search, graph))
