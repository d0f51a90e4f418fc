"""NoisyBisection: table tests, properties, and the calibration study (simulated, no builds)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finbisect.search.noisy import NoisyBisection
from finbisect.search.stats import beta_cdf, beta_quantile, z_channel_capacity
from finbisect.search.strategy import (
    OLD_END,
    AnswerStatus,
    CandidateGraph,
    ClassicBisection,
    Costs,
    VisitCost,
)
from finbisect.testing.simulate import noisy_factory, simulate_hunt, simulate_many


def hunt(
    graph: CandidateGraph,
    culprit: int,
    p: float,
    *,
    bug_is_new: bool = True,
    seed: int = 0,
    unbuildable: frozenset[int] = frozenset(),
    max_runs: int = 2000,
) -> NoisyBisection:
    search = NoisyBisection(graph, bug_is_new=bug_is_new, max_runs=max_runs)
    simulate_hunt(
        search,
        graph,
        culprit=culprit,
        p=p,
        bug_is_new=bug_is_new,
        rng=random.Random(seed),
        unbuildable=unbuildable,
    )
    return search


def classic_answer(graph: CandidateGraph, culprit: int, *, bug_is_new: bool) -> int | None:
    search = ClassicBisection(graph, runs=1, bug_is_new=bug_is_new)
    simulate_hunt(
        search, graph, culprit=culprit, p=1.0, bug_is_new=bug_is_new, rng=random.Random(0)
    )
    return search.answer().culprit


# A merge: 0 - 1 - 2 - 5 and 0 - 3 - 4 - 5 (5 merges 2 and 4), then 6.
MERGE = CandidateGraph.from_parents(
    ["0", "1", "2", "3", "4", "5", "6"],
    {"1": ["0"], "2": ["1"], "3": ["0"], "4": ["3"], "5": ["2", "4"], "6": ["5"]},
)


# -- deterministic repros: the classic answer -------------------------------------------
@pytest.mark.parametrize("bug_is_new", [True, False])
@pytest.mark.parametrize(
    "graph", [CandidateGraph.linear(1), CandidateGraph.linear(2), CandidateGraph.linear(9), MERGE]
)
def test_deterministic_repro_names_the_classic_culprit(
    graph: CandidateGraph, *, bug_is_new: bool
) -> None:
    for culprit in range(len(graph)):
        answer = hunt(graph, culprit, 1.0, bug_is_new=bug_is_new).answer()
        assert answer.status is AnswerStatus.FOUND
        assert answer.culprit == culprit == classic_answer(graph, culprit, bug_is_new=bug_is_new)
        assert answer.confidence >= 0.95


@pytest.mark.parametrize("n", [16, 128, 1024])
def test_deterministic_builds_within_one_of_classic(n: int) -> None:
    rng = random.Random(n)
    graph = CandidateGraph.linear(n)
    ours_runs = theirs_runs = 0
    for _ in range(20):
        culprit = rng.randrange(n)
        ours = simulate_hunt(
            noisy_factory()(graph), graph, culprit=culprit, p=1.0, bug_is_new=True, rng=rng
        )
        theirs = simulate_hunt(
            ClassicBisection(graph, runs=1, bug_is_new=True),
            graph,
            culprit=culprit,
            p=1.0,
            bug_is_new=True,
            rng=rng,
        )
        assert ours.correct
        assert ours.builds <= theirs.builds + 1
        ours_runs += ours.search_runs + ours.calibration_runs + ours.endpoint_runs
        theirs_runs += theirs.search_runs + theirs.calibration_runs + theirs.endpoint_runs
    assert ours_runs <= 4 * theirs_runs  # calibration and the clean end dominate at small N


# -- phases and verification failures -----------------------------------------------------
@pytest.mark.parametrize(
    ("bug_is_new", "bug_end", "status"),
    [
        (True, 7, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE),
        (False, OLD_END, AnswerStatus.OLD_END_SHOWS_BUG_SIDE),
    ],
)
def test_bug_end_without_symptom_is_a_wrong_end(
    *, bug_is_new: bool, bug_end: int, status: AnswerStatus
) -> None:
    search = NoisyBisection(
        CandidateGraph.linear(8), bug_is_new=bug_is_new, max_runs_per_revision=50
    )
    runs = 0
    while (request := search.next_request()) is not None:
        assert request.index == bug_end
        search.record(request.index, symptoms=0, clean=request.runs)
        runs += request.runs
    assert runs == 50
    assert search.answer().status is status


@pytest.mark.parametrize(
    ("bug_is_new", "clean_end", "status"),
    [
        (True, OLD_END, AnswerStatus.OLD_END_SHOWS_BUG_SIDE),
        (False, 7, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE),
    ],
)
def test_symptom_at_clean_end_is_a_wrong_end(
    *, bug_is_new: bool, clean_end: int, status: AnswerStatus
) -> None:
    search = NoisyBisection(CandidateGraph.linear(8), bug_is_new=bug_is_new)
    while (request := search.next_request()) is not None:
        if request.index == clean_end:
            search.record(request.index, symptoms=1, clean=request.runs - 1)
        else:
            search.record(request.index, symptoms=request.runs, clean=0)
    assert search.answer().status is status


def test_calibration_then_clean_end_then_search() -> None:
    search = NoisyBisection(CandidateGraph.linear(64), bug_is_new=True)
    first = search.next_request()
    assert first is not None
    assert first.index == 63
    search.record(63, symptoms=first.runs, clean=0)  # p looks like 1: calibrated at once
    verify = search.next_request()
    assert verify is not None
    assert verify.index == OLD_END
    low = search.p_estimate()[1]
    # A buggy clean end would show the symptom with probability >= confidence.
    assert 1 - (1 - beta_quantile(0.05, 1 + first.runs, 1)) ** verify.runs >= 0.95
    assert low > 0
    search.record(OLD_END, symptoms=0, clean=verify.runs)
    step = search.next_request()
    assert step is not None
    assert 0 <= step.index < 63


def test_flaky_bug_end_is_calibrated_in_batches_until_p_is_bounded() -> None:
    search = NoisyBisection(CandidateGraph.linear(32), bug_is_new=True)
    rng = random.Random(3)
    symptoms = runs = 0
    while (request := search.next_request()) is not None and request.index == 31:
        shown = sum(rng.random() < 0.2 for _ in range(request.runs))
        symptoms, runs = symptoms + shown, runs + request.runs
        search.record(31, symptoms=shown, clean=request.runs - shown)
    low = beta_quantile(0.05, 1 + symptoms, 1 + runs - symptoms)
    assert low >= 0.5 * (1 + symptoms) / (2 + runs)
    assert symptoms >= 3


# -- skips and budget -------------------------------------------------------------------
def test_unbuildable_neighbours_make_an_ambiguous_answer() -> None:
    graph = CandidateGraph.linear(16)
    answer = hunt(graph, 6, 0.5, seed=1, unbuildable=frozenset({4, 5})).answer()
    assert answer.status is AnswerStatus.AMBIGUOUS
    assert set(answer.candidates) == {4, 5, 6}
    probabilities = [p for p in answer.probabilities if p is not None]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) >= 0.95


def test_unbuildable_commits_elsewhere_do_not_matter() -> None:
    graph = CandidateGraph.linear(16)
    answer = hunt(graph, 9, 0.5, seed=2, unbuildable=frozenset({4, 5, 12})).answer()
    assert answer.status is AnswerStatus.FOUND
    assert answer.culprit == 9


def test_budget_spent_lists_candidates_with_probabilities() -> None:
    graph = CandidateGraph.linear(128)
    search = NoisyBisection(graph, bug_is_new=True, max_runs=60)
    stats = simulate_hunt(search, graph, culprit=40, p=0.2, bug_is_new=True, rng=random.Random(4))
    answer = search.answer()
    assert answer.status is AnswerStatus.BUDGET_SPENT
    assert stats.calibration_runs + stats.endpoint_runs + stats.search_runs >= 60
    assert answer.culprit is None
    assert 1 < len(answer.candidates) <= 10
    probabilities = [p for p in answer.probabilities if p is not None]
    assert len(probabilities) == len(answer.candidates)
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p < 1 for p in probabilities)


# Seeds whose capped hunt asks for the same batches (a tighter budget may shorten the
# last batch, and then the hunt is another one): each failed before the fix.
@pytest.mark.parametrize("seed", range(4))
def test_runs_that_settle_the_culprit_and_spend_the_budget_report_it_found(seed: int) -> None:
    graph = CandidateGraph.linear(64)
    free = hunt(graph, culprit=30, p=0.5, seed=seed)
    assert free.answer().status is AnswerStatus.FOUND
    # The same hunt with exactly the runs it needed: its last batch spends the budget.
    exact = hunt(graph, culprit=30, p=0.5, seed=seed, max_runs=free.runs_recorded)
    assert exact.answer().status is AnswerStatus.FOUND
    assert exact.answer().culprit == free.answer().culprit


def test_unrelated_only_visit_is_a_skip() -> None:
    search = NoisyBisection(CandidateGraph.linear(4), bug_is_new=True, verify=False)
    search.record(3, symptoms=3, clean=0)
    search.record(1, symptoms=0, clean=0)
    for _ in range(20):
        request = search.next_request()
        if request is None:
            break
        assert request.index != 1


# -- reporting and cost hooks -----------------------------------------------------------
def test_p_estimate_and_posterior() -> None:
    search = hunt(CandidateGraph.linear(32), 11, 0.3, seed=5)
    estimate, low, high = search.p_estimate()
    assert 0 < low < estimate < high < 1
    assert low < 0.3 < high
    posterior = search.posterior()
    assert len(posterior) == 32
    assert math.isclose(sum(posterior), 1.0)
    assert max(posterior) == posterior[11] >= 0.95


def test_measured_costs_are_running_means() -> None:
    search = NoisyBisection(CandidateGraph.linear(8), bug_is_new=True)
    search.record_costs(7, VisitCost(build_seconds=100.0, run_seconds=30.0, runs=3))
    search.record_costs(3, VisitCost(build_seconds=200.0, run_seconds=10.0, runs=1))
    search.record_costs(3, VisitCost(build_seconds=None, run_seconds=10.0, runs=4))
    assert search.build_seconds == 150.0
    assert search.run_seconds == 50.0 / 8


def test_built_revisions_are_revisited_when_builds_are_dear() -> None:
    graph = CandidateGraph.linear(64)
    search = NoisyBisection(
        graph, bug_is_new=True, verify=False, costs=Costs(build_seconds=10_000.0, run_seconds=1.0)
    )
    search.record(63, symptoms=10, clean=10)  # p about 1/2
    search.record(31, symptoms=0, clean=1)  # one clean run: the side of 31 is still open
    request = search.next_request()
    assert request is not None
    assert request.index == 31


# -- helpers ----------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [(1, 1), (2, 5), (30, 4), (0.5, 0.5), (200, 800)])
def test_beta_quantile_inverts_cdf(a: float, b: float) -> None:
    for q in (0.05, 0.5, 0.95):
        assert math.isclose(beta_cdf(beta_quantile(q, a, b), a, b), q, abs_tol=1e-9)
    assert math.isclose(beta_cdf(0.3, 1, 1), 0.3)
    assert math.isclose(beta_quantile(0.05, 4, 1), 0.05**0.25, rel_tol=1e-9)


def test_z_channel_capacity() -> None:
    assert z_channel_capacity(1.0) == 1.0
    assert math.isclose(z_channel_capacity(0.5), math.log2(1.25))
    assert 0 < z_channel_capacity(0.05) < z_channel_capacity(0.2) < z_channel_capacity(0.5)


# -- properties -------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    data=st.data(),
    bug_is_new=st.booleans(),
)
def test_property_deterministic_always_right(
    n: int, data: st.DataObject, *, bug_is_new: bool
) -> None:
    culprit = data.draw(st.integers(0, n - 1))
    answer = hunt(CandidateGraph.linear(n), culprit, 1.0, bug_is_new=bug_is_new).answer()
    assert answer.status is AnswerStatus.FOUND
    assert answer.culprit == culprit


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 30),
    visits=st.lists(
        st.tuples(st.integers(0, 29), st.integers(0, 3), st.integers(0, 5)), max_size=12
    ),
)
def test_property_symptoms_rule_out_and_mass_sums_to_one(
    n: int, visits: list[tuple[int, int, int]]
) -> None:
    search = NoisyBisection(CandidateGraph.linear(n), bug_is_new=True, verify=False)
    lowest_symptom = n - 1
    for raw_index, raw_symptoms, clean in visits:
        index = raw_index % n
        # Symptoms only where some culprit explains them all (at or below earlier ones).
        symptoms = raw_symptoms if index <= lowest_symptom else 0
        search.record(index, symptoms=symptoms, clean=clean or 1)
        if symptoms:
            lowest_symptom = index
    posterior = search.posterior()
    assert math.isclose(sum(posterior), 1.0)
    assert all(w == 0 for w in posterior[lowest_symptom + 1 :])
    estimate, low, high = search.p_estimate()
    assert 0 <= low <= estimate <= high <= 1
    answer = search.answer()
    assert list(answer.probabilities) == sorted(answer.probabilities, reverse=True)  # type: ignore[type-var]


# -- calibration study ------------------------------------------------------------------
def _check_calibration(n: int, p: float, hunts: int) -> None:
    summary = simulate_many(noisy_factory(), n, p, hunts=hunts, seed=n * 100 + int(100 * p))
    slack = 3 * math.sqrt(0.95 * 0.05 / hunts)
    assert summary.found >= 0.95 * hunts  # the default budget suffices almost always
    assert summary.accuracy >= 0.95 - slack, summary


@pytest.mark.parametrize(("n", "p"), [(16, 0.5), (16, 0.2), (128, 0.5), (128, 0.2)])
def test_calibration_reduced_sample(n: int, p: float) -> None:
    _check_calibration(n, p, hunts=60)


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.5, 0.2, 0.05])
@pytest.mark.parametrize("n", [16, 128, 1024])
def test_calibration_full_study(n: int, p: float) -> None:
    # About 3 minutes: deselected by default, run with `pytest -m slow`.
    _check_calibration(n, p, hunts=300)
