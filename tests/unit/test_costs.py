"""Measured costs: symptom runs timed apart from clean ones, and the searches weighing them."""

from __future__ import annotations

import pytest

from finbisect.search.costs import CostHooks
from finbisect.search.noisy import NoisyBisection
from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.strategy import OLD_END, CandidateGraph, Costs, VisitCost


def test_symptom_and_clean_runs_are_timed_apart() -> None:
    costs = CostHooks(Costs(build_seconds=300.0, run_seconds=5.0))
    assert costs.run_costs() == (5.0, 5.0)  # the defaults until measured
    three_hung = VisitCost(
        build_seconds=None, run_seconds=3 * 60.0 + 2 * 0.5, runs=5,
        symptom_runs=3, symptom_seconds=3 * 60.0,
    )  # fmt: skip
    costs.record_costs(0, three_hung)
    assert costs.run_costs() == pytest.approx((60.0, 0.5))
    assert costs.run_seconds == pytest.approx(36.2)
    assert costs.build_seconds == 300.0


def test_a_kind_not_measured_yet_costs_the_mean_run() -> None:
    costs = CostHooks(Costs())
    costs.record_costs(0, VisitCost(build_seconds=10.0, run_seconds=4.0, runs=2))
    assert costs.run_costs() == (2.0, 2.0)
    costs.record_costs(
        0,
        VisitCost(build_seconds=None, run_seconds=6.0, runs=2, symptom_runs=2, symptom_seconds=6.0),
    )
    assert costs.run_costs() == (3.0, 2.0)
    assert costs.build_seconds == 10.0


def _bug_mass(search: NoisyBisection, index: int) -> float:
    return sum(p for c, p in enumerate(search.summary().posterior) if c <= index)


@pytest.mark.parametrize("kind", [NoisyBisection, RateChangeBisection])
def test_dear_symptom_runs_steer_the_search_to_probably_clean_revisions(
    kind: type[NoisyBisection],
) -> None:
    """Every revision built (a warm hunt): with hung runs at 60 s against clean ones at
    0.2 s, a split that will probably come out clean gives more bits per second."""
    chosen = {}
    for symptom_seconds in (0.2, 60.0):
        graph = CandidateGraph.linear(64)
        search = (
            NoisyBisection(graph, bug_is_new=True, verify=False)
            if kind is NoisyBisection
            else RateChangeBisection(graph, bug_is_new=True)
        )
        search.mark_built(range(64))
        search.record(63, symptoms=6, clean=0)
        all_symptoms = VisitCost(
            build_seconds=None, run_seconds=6 * symptom_seconds, runs=6,
            symptom_runs=6, symptom_seconds=6 * symptom_seconds,
        )  # fmt: skip
        search.record_costs(63, all_symptoms)
        search.record(OLD_END, symptoms=0, clean=6)
        search.record_costs(OLD_END, VisitCost(build_seconds=None, run_seconds=6 * 0.2, runs=6))
        request = search.next_request()
        assert request is not None
        chosen[symptom_seconds] = _bug_mass(search, request.index)
    assert chosen[60.0] < chosen[0.2] - 0.1
