"""RateChangeBisection and its model: closed forms, table tests, properties, calibration."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finbisect.search.model_choice import AutoBisection, Reason, two_sided_favoured
from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.rate_posterior import (
    RatePosterior,
    RatePrior,
    asymmetric_channel_capacity,
    log_prob_less,
)
from finbisect.search.stats import beta_cdf, binary_entropy, log_beta, z_channel_capacity
from finbisect.search.strategy import OLD_END, AnswerStatus, CandidateGraph, Costs
from finbisect.testing.simulate import simulate_hunt

# A merge: 0 - 1 - 2 - 5 and 0 - 3 - 4 - 5 (5 merges 2 and 4), then 6.
MERGE = CandidateGraph.from_parents(
    ["0", "1", "2", "3", "4", "5", "6"],
    {"1": ["0"], "2": ["1"], "3": ["0"], "4": ["3"], "5": ["2", "4"], "6": ["5"]},
)


def hunt(
    graph: CandidateGraph,
    culprit: int,
    p0: float,
    p1: float,
    *,
    bug_is_new: bool = True,
    seed: int = 0,
    unbuildable: frozenset[int] = frozenset(),
    max_runs: int = 5000,
) -> RateChangeBisection:
    """A simulated hunt: p0 on the clean side, p1 on the bug side."""
    search = RateChangeBisection(
        graph,
        bug_is_new=bug_is_new,
        max_runs=max_runs,
        costs=Costs(build_seconds=30.0, run_seconds=5.0),
    )
    simulate_hunt(
        search,
        graph,
        culprit=culprit,
        p=p1,
        p_clean=p0,
        bug_is_new=bug_is_new,
        rng=random.Random(seed),
        unbuildable=unbuildable,
    )
    return search


def numeric_prob_less(a0: float, b0: float, a1: float, b1: float, steps: int = 20_000) -> float:
    """P(X0 < X1) = E[I_{X1}(a0, b0)] by the midpoint rule (slow, for checking)."""
    total = 0.0
    for i in range(steps):
        x = (i + 0.5) / steps
        log_pdf = (a1 - 1) * math.log(x) + (b1 - 1) * math.log1p(-x) - log_beta(a1, b1)
        total += math.exp(log_pdf) * beta_cdf(x, a0, b0)
    return total / steps


# -- closed forms -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "params", [(1, 1, 1, 1), (2, 5, 5, 2), (3, 40, 12, 30), (1, 60, 2, 3), (7, 3, 2, 9)]
)
def test_prob_less_matches_quadrature(params: tuple[int, int, int, int]) -> None:
    exact = math.exp(log_prob_less(*params))
    assert math.isclose(exact, numeric_prob_less(*params), rel_tol=1e-5, abs_tol=1e-9)


@given(st.tuples(*[st.integers(1, 300)] * 4))
def test_prob_less_and_its_reverse_sum_to_one(params: tuple[int, int, int, int]) -> None:
    a0, b0, a1, b1 = params
    forward = math.exp(log_prob_less(a0, b0, a1, b1))
    backward = math.exp(log_prob_less(a1, b1, a0, b0))
    assert math.isclose(forward + backward, 1.0, rel_tol=1e-9)
    # Mirroring both variables (1 - X) reverses the order.
    assert math.isclose(forward, math.exp(log_prob_less(b1, a1, b0, a0)), rel_tol=1e-9)


def test_prob_less_far_apart_keeps_relative_precision() -> None:
    tiny = log_prob_less(400, 10, 10, 400)  # X0 near 0.98, X1 near 0.02
    assert -1000 < tiny < -200
    assert math.isclose(log_prob_less(5, 5, 5, 5), math.log(0.5), rel_tol=1e-12)


def test_capacity_special_cases() -> None:
    assert math.isclose(
        asymmetric_channel_capacity(0.0, 0.5), z_channel_capacity(0.5), rel_tol=1e-9
    )
    assert math.isclose(
        asymmetric_channel_capacity(0.1, 0.9), 1 - binary_entropy(0.1), rel_tol=1e-9
    )
    assert asymmetric_channel_capacity(0.3, 0.3) < 1e-12
    assert 0 < asymmetric_channel_capacity(0.02, 0.2) < asymmetric_channel_capacity(0.05, 0.5)


@pytest.mark.parametrize(
    "params",
    [
        (0.75, 1, 1, 1),  # a leaning clean prior, no runs yet
        (0.5, 60, 20, 3),  # shortest whole sum: the complement over b1
        (0.5, 60, 20, 30.5),  # no whole complement: the sum over a1
        (2.5, 7, 1.5, 9),  # a1 not whole: the sum over b0
        (1.5, 2, 30, 2.5),
    ],
)
def test_prob_less_with_half_parameters_matches_quadrature(
    params: tuple[float, float, float, float],
) -> None:
    exact = math.exp(log_prob_less(*params))
    assert math.isclose(exact, numeric_prob_less(*params), rel_tol=1e-5, abs_tol=1e-9)


@given(
    st.tuples(st.integers(0, 200), st.integers(1, 300), st.integers(1, 300), st.integers(1, 300))
)
def test_prob_less_with_a_half_clean_prior_mirrors(params: tuple[int, int, int, int]) -> None:
    a0, b0, a1, b1 = params[0] + 0.5, *params[1:]
    forward = math.exp(log_prob_less(a0, b0, a1, b1))
    backward = math.exp(log_prob_less(a1, b1, a0, b0))
    assert math.isclose(forward + backward, 1.0, rel_tol=1e-9)


def test_prob_less_needs_a_whole_parameter_to_sum_over() -> None:
    with pytest.raises(ValueError, match="whole a1 or b0"):
        log_prob_less(1, 0.5, 1.5, 1)


@pytest.mark.parametrize(
    ("clean", "bug", "message"),
    [((0, 1), (1, 1), "positive"), ((1, 1), (1, -1), "positive"), ((1, 1), (0.5, 1), "whole")],
)
def test_prior_parameters_are_checked(
    clean: tuple[float, float], bug: tuple[float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RatePrior(clean=clean, bug=bug)


# -- the posterior ----------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    visits=st.lists(
        st.tuples(st.integers(-1, 29), st.integers(0, 6), st.integers(0, 6)), max_size=12
    ),
    bug_is_new=st.booleans(),
    merge=st.booleans(),
)
def test_property_posterior_sums_to_one(
    n: int, visits: list[tuple[int, int, int]], *, bug_is_new: bool, merge: bool
) -> None:
    graph = MERGE if merge else CandidateGraph.linear(n)
    search = RateChangeBisection(graph, bug_is_new=bug_is_new)
    for raw, symptoms, clean in visits:
        index = raw if raw == OLD_END else raw % len(graph)
        search.record(index, symptoms=symptoms, clean=clean)
    posterior = search.posterior()
    assert math.isclose(sum(posterior), 1.0)
    assert all(w >= 0 for w in posterior)
    (b, b_low, b_high), (a, a_low, a_high) = search.rates()
    assert 0 <= b_low <= b <= b_high <= 1
    assert 0 <= a_low <= a <= a_high <= 1


def test_no_runs_in_between_leave_the_posterior_uniform() -> None:
    search = RateChangeBisection(CandidateGraph.linear(8), bug_is_new=True)
    search.record(OLD_END, symptoms=1, clean=20)
    search.record(7, symptoms=10, clean=10)
    assert all(math.isclose(w, 1 / 8) for w in search.posterior())


def test_mirrored_runs_give_a_mirrored_posterior() -> None:
    """A fix hunt is a regression hunt read backwards (the symmetric case).

    On a line of n, revision x (old end -1) maps to y = n - 2 - x, candidate c to
    n - 1 - c: x is on c's bug side in a regression hunt iff y is on n - 1 - c's
    bug (old) side in a fix hunt, so equal runs give equal likelihoods.
    """
    n = 9
    graph = CandidateGraph.linear(n)
    regression = RatePosterior(graph, bug_is_new=True)
    fix = RatePosterior(graph, bug_is_new=False)
    for x, (s, f) in {OLD_END: (1, 15), 2: (2, 8), 5: (6, 4), 6: (3, 9), 8: (9, 3)}.items():
        regression.observe(x, s, f, first=True)
        fix.observe(n - 2 - x, s, f, first=True)
    forward, backward = _per_candidate(regression, n), _per_candidate(fix, n)
    assert math.isclose(sum(forward), 1.0)
    for c in range(n):
        assert math.isclose(forward[c], backward[n - 1 - c], rel_tol=1e-9)
    assert max(forward) < 1.0


def _per_candidate(model: RatePosterior, n: int) -> list[float]:
    post = model.snapshot()
    out = [0.0] * n
    for i, cell in enumerate(post.cells):
        for c in range(n):
            if cell.mask >> c & 1:
                out[c] = post.each(i)
    return out


def test_symptoms_on_both_sides_are_not_contradictions() -> None:
    search = RateChangeBisection(CandidateGraph.linear(16), bug_is_new=True)
    search.record(OLD_END, symptoms=2, clean=40)
    search.record(15, symptoms=20, clean=20)
    search.record(3, symptoms=1, clean=19)  # a symptom at a clean-looking revision
    search.record(11, symptoms=10, clean=10)
    posterior = search.posterior()
    assert all(w > 0 for w in posterior)
    assert sum(posterior[4:12]) > 0.9  # between the clean-looking and the bug-looking one


# -- hunts ------------------------------------------------------------------------------
@pytest.mark.parametrize("bug_is_new", [True, False])
@pytest.mark.parametrize("graph", [CandidateGraph.linear(1), CandidateGraph.linear(12), MERGE])
def test_clear_rate_change_names_every_culprit(graph: CandidateGraph, *, bug_is_new: bool) -> None:
    """p 0.05 -> 0.9 (fix hunts: the old side has the higher rate): every culprit found."""
    for culprit in range(len(graph)):
        search = hunt(graph, culprit, 0.05, 0.9, bug_is_new=bug_is_new, seed=culprit)
        answer = search.answer()
        assert answer.status is AnswerStatus.FOUND, answer
        assert answer.culprit == culprit
        assert answer.confidence >= 0.95


def test_fix_hunt_reports_rates_before_and_after() -> None:
    """A fix: frequent before (0.6), rare after (0.05)."""
    search = hunt(CandidateGraph.linear(32), 20, 0.05, 0.6, bug_is_new=False, seed=3)
    assert search.answer().culprit == 20
    (before, b_low, b_high), (after, a_low, a_high) = search.rates()
    assert b_low < 0.6 < b_high
    assert a_low < 0.05 < a_high
    assert after < before


def test_regression_rates_contain_the_truth() -> None:
    search = hunt(CandidateGraph.linear(64), 40, 0.1, 0.5, seed=4)
    assert search.answer().culprit == 40
    (_, b_low, b_high), (after, a_low, a_high) = search.rates()
    assert b_low < 0.1 < b_high
    assert a_low < 0.5 < a_high
    assert search.p_estimate()[0] == pytest.approx(after)


def test_ends_come_first_and_alternate() -> None:
    search = RateChangeBisection(CandidateGraph.linear(32), bug_is_new=True)
    first = search.next_request()
    assert first is not None
    assert first.index == 31  # the bug end
    search.record(31, symptoms=first.runs, clean=0)
    second = search.next_request()
    assert second is not None
    assert second.index == OLD_END
    search.record(OLD_END, symptoms=0, clean=second.runs)
    third = search.next_request()
    assert third is not None
    assert 0 <= third.index < 31  # the ends separate the rates: the search starts


def test_found_states_the_lower_of_its_mass_and_its_mass_at_pessimistic_rates() -> None:
    graph = CandidateGraph.linear(32)
    lower = 0
    for seed in range(4):
        search = hunt(graph, 20, 0.05, 0.3, seed=seed)
        answer = search.answer()
        assert answer.status is AnswerStatus.FOUND
        assert answer.culprit is not None
        mass = search.posterior()[answer.culprit]
        assert 0.95 <= answer.confidence <= mass + 1e-12
        lower += answer.confidence < mass - 0.005
    assert lower >= 1  # the pessimistic rates held it lower (seed 3: 0.955 against 0.976)


def test_no_symptom_anywhere_names_no_culprit() -> None:
    """A bug end that never shows the symptom: a wrong end, or no rate change to find."""
    search = RateChangeBisection(
        CandidateGraph.linear(8), bug_is_new=True, max_runs_per_revision=40, max_runs=400
    )
    while (request := search.next_request()) is not None:
        search.record(request.index, symptoms=0, clean=request.runs)
    answer = search.answer()
    assert answer.culprit is None
    assert answer.status in (
        AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE,
        AnswerStatus.RATES_INSEPARABLE,
    )


# -- skips, budget, inseparable rates ---------------------------------------------------
def test_unbuildable_neighbours_make_an_ambiguous_answer() -> None:
    graph = CandidateGraph.linear(16)
    answer = hunt(graph, 6, 0.05, 0.8, seed=1, unbuildable=frozenset({4, 5})).answer()
    assert answer.status is AnswerStatus.AMBIGUOUS
    assert set(answer.candidates) == {4, 5, 6}
    probabilities = [p for p in answer.probabilities if p is not None]
    assert sum(probabilities) >= 0.95


def test_unbuildable_commits_elsewhere_do_not_matter() -> None:
    answer = hunt(CandidateGraph.linear(16), 9, 0.05, 0.8, seed=2, unbuildable=frozenset({4, 12}))
    assert answer.answer().status is AnswerStatus.FOUND
    assert answer.answer().culprit == 9


def test_budget_spent_lists_candidates_with_probabilities() -> None:
    search = hunt(CandidateGraph.linear(128), 40, 0.05, 0.5, seed=4, max_runs=60)
    answer = search.answer()
    assert answer.status is AnswerStatus.BUDGET_SPENT
    assert search.runs_recorded >= 60
    assert answer.culprit is None
    assert 1 < len(answer.candidates) <= 10
    probabilities = [p for p in answer.probabilities if p is not None]
    assert probabilities == sorted(probabilities, reverse=True)


def test_equal_rates_are_reported_inseparable() -> None:
    """No change at all (0.3 everywhere): the hunts say so instead of naming a commit (the
    good end shows the symptom as often as the bad one, or the rates cannot be told apart),
    most of them long before the budget is spent. Ten seeded hunts: which ones burn the
    budget depends on the draws."""
    answers, stopped, before, after = [], 0, 0, 0
    for seed in range(10):
        search = hunt(CandidateGraph.linear(64), 30, 0.3, 0.3, seed=seed, max_runs=600)
        answer = search.answer()
        answers.append(answer)
        stopped += search.runs_recorded < 600 and answer.status in (
            AnswerStatus.RATES_INSEPARABLE,
            AnswerStatus.OLD_END_SHOWS_BUG_SIDE,
        )
        (_, b_low, b_high), (_, a_low, a_high) = search.rates()
        before += b_low < 0.3 < b_high
        after += a_low < 0.3 < a_high
    assert all(a.culprit is None for a in answers)
    assert all(a.status is not AnswerStatus.FOUND for a in answers)
    assert stopped >= 7
    assert before >= 7  # 90% intervals
    assert after >= 7


def test_ends_that_show_the_symptom_alike_do_not_bracket_a_change() -> None:
    search = hunt(CandidateGraph.linear(64), 30, 1.0, 1.0, seed=5)
    assert search.answer().status is AnswerStatus.OLD_END_SHOWS_BUG_SIDE
    assert search.runs_recorded <= 20


def test_a_small_change_with_a_small_budget_is_inseparable() -> None:
    # Whether 300 runs leave 0.2 -> 0.25 plausibly separable depends on the draws: of twelve
    # seeded hunts, none names a commit and at least a third say the rates are too close
    # before the budget is spent (the others spend it: exit 5 either way).
    hunts = [
        hunt(CandidateGraph.linear(1024), 500, 0.2, 0.25, seed=seed, max_runs=300)
        for seed in range(12)
    ]
    statuses = [h.answer().status for h in hunts]
    assert AnswerStatus.FOUND not in statuses
    early = [h.runs_recorded < 300 for h in hunts]
    assert all(
        s is AnswerStatus.RATES_INSEPARABLE for s, e in zip(statuses, early, strict=True) if e
    )
    assert sum(early) >= 4


# -- seeding and switching --------------------------------------------------------------
def test_from_observations_carries_on_from_the_ends() -> None:
    graph = CandidateGraph.linear(32)
    seeded = RateChangeBisection.from_observations(
        graph, {31: (9, 3), OLD_END: (1, 11)}, bug_is_new=True, skipped=frozenset({5})
    )
    assert seeded.runs_recorded == 24
    request = seeded.next_request()
    assert request is not None
    assert 0 <= request.index < 31  # the ends already separate the rates
    assert request.index != 5


def test_auto_switches_when_the_clean_end_shows_the_symptom() -> None:
    graph = CandidateGraph.linear(64)
    search = AutoBisection(graph, bug_is_new=True)
    stats = simulate_hunt(
        search, graph, culprit=17, p=0.5, p_clean=0.3, bug_is_new=True, rng=random.Random(1)
    )
    assert search.switch is not None
    assert search.switch.reason is Reason.CLEAN_END
    assert search.switch.symptoms >= 1
    message = search.switch.message()
    assert message.startswith("the symptom also shows at the good end (")
    assert message.endswith("runs): hunting for the commit that changed its rate")
    assert isinstance(search.inner, RateChangeBisection)
    assert stats.correct


def test_auto_checks_a_one_sided_answer_under_the_two_sided_model() -> None:
    graph = CandidateGraph.linear(64)
    search = AutoBisection(graph, bug_is_new=True)
    stats = simulate_hunt(search, graph, culprit=40, p=0.4, bug_is_new=True, rng=random.Random(2))
    assert search.switch is not None
    assert search.switch.reason is Reason.CONFIRM
    assert "checking the answer" in search.notes()[0]
    assert stats.correct


def test_auto_confirms_with_a_clean_prior_leaning_to_a_silent_clean_side() -> None:
    graph = CandidateGraph.linear(64)
    runs = []
    for search in (
        AutoBisection(graph, bug_is_new=True),  # the default confirm prior, Beta(3/4, 1)
        AutoBisection(graph, bug_is_new=True, confirm_prior=RatePrior()),  # uniform
    ):
        stats = simulate_hunt(
            search, graph, culprit=40, p=0.4, bug_is_new=True, rng=random.Random(3)
        )
        assert search.switch is not None
        assert search.switch.reason is Reason.CONFIRM
        assert stats.correct
        runs.append(stats.calibration_runs + stats.endpoint_runs + stats.search_runs)
    assert runs[0] < runs[1]  # 112 against 115 runs


def test_auto_without_confirmation_stays_one_sided_without_clean_symptoms() -> None:
    graph = CandidateGraph.linear(64)
    search = AutoBisection(graph, bug_is_new=True, confirm=False)
    stats = simulate_hunt(search, graph, culprit=40, p=0.4, bug_is_new=True, rng=random.Random(2))
    assert search.switch is None
    assert stats.correct


def test_evidence_prefers_the_model_that_fits() -> None:
    graph = CandidateGraph.linear(16)
    one_sided = {OLD_END: [0, 30], 15: [10, 10], 7: [0, 20], 11: [5, 5]}
    assert two_sided_favoured(graph, one_sided, bug_is_new=True) < 0
    two_sided = {OLD_END: [0, 30], 15: [10, 10], 3: [2, 28], 7: [3, 27], 11: [5, 5]}
    assert two_sided_favoured(graph, two_sided, bug_is_new=True) > 0


# -- calibration ------------------------------------------------------------------------
def test_calibration_reduced_sample() -> None:
    """Named culprits are right at least as often as the confidence says (fixed seeds)."""
    rng = random.Random(2024)
    graph = CandidateGraph.linear(8)
    named = right = 0
    stated = 0.0
    for _ in range(60):
        culprit = rng.randrange(8)
        search = RateChangeBisection(graph, bug_is_new=True)
        stats = simulate_hunt(
            search, graph, culprit=culprit, p=0.5, p_clean=0.05, bug_is_new=True, rng=rng
        )
        if stats.status is AnswerStatus.FOUND:
            named += 1
            right += stats.correct
            stated += stats.confidence
    assert named >= 57
    slack = 3 * math.sqrt(0.95 * 0.05 / named)
    assert right / named >= stated / named - slack
