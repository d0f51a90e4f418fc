"""The two-sided model's clean-rate prior as a mixture: exact against brute-force integration."""

from __future__ import annotations

import math

import pytest

from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.rate_posterior import RatePosterior, RatePrior
from finbisect.search.stats import beta_cdf, log_beta
from finbisect.search.strategy import OLD_END, CandidateGraph

RUNS = {OLD_END: (1, 9), 1: (0, 4), 2: (3, 3), 4: (2, 6), 5: (6, 2)}  # index: (symptoms, clean)


def _numeric_likelihoods(
    prior: RatePrior, n: int, runs: dict[int, tuple[int, int]], steps: int = 4000
) -> list[float]:
    """P(runs | culprit c) for each c of a line of n, regression, by quadrature over p_clean.

    The prior density is Σ w·Beta(p0; a, b)·Beta(p1; a1, b1)·[p0 < p1] / Z, Z each
    component's mass under the constraint. p_bug is integrated on [p0, 1] in
    closed form (an incomplete Beta), p_clean by the midpoint rule after p0 = u²
    (smooth where a Beta(a < 1, b) density is not, at 0).
    """
    a1, b1 = prior.bug
    out = []
    for c in range(n):
        s1 = sum(s for x, (s, _) in runs.items() if x >= c)
        f1 = sum(f for x, (_, f) in runs.items() if x >= c)
        s0 = sum(s for x, (s, _) in runs.items() if x < c)
        f0 = sum(f for x, (_, f) in runs.items() if x < c)
        total = 0.0
        for w, a, b in prior.components():
            mass = like = 0.0
            for i in range(steps):
                u = (i + 0.5) / steps
                p0 = u * u
                density = (
                    2
                    * u
                    * math.exp((a - 1) * math.log(p0) + (b - 1) * math.log1p(-p0) - log_beta(a, b))
                )
                mass += density * (1.0 - beta_cdf(p0, a1, b1))
                # ∫_{p0}^1 p1^s1 (1-p1)^f1 Beta(p1; a1, b1) dp1
                upper = math.exp(log_beta(a1 + s1, b1 + f1) - log_beta(a1, b1)) * (
                    1.0 - beta_cdf(p0, a1 + s1, b1 + f1)
                )
                like += density * p0**s0 * (1.0 - p0) ** f0 * upper
            total += w * like / mass
        out.append(total)
    return out


def _model(prior: RatePrior, n: int) -> RatePosterior:
    model = RatePosterior(CandidateGraph.linear(n), bug_is_new=True, prior=prior)
    for x, (s, f) in RUNS.items():
        model.observe(x, s, f, first=True)
    return model


def _per_candidate(model: RatePosterior, n: int) -> list[float]:
    post = model.snapshot()
    return [
        post.each(next(i for i, c in enumerate(post.cells) if c.mask >> k & 1)) for k in range(n)
    ]


MIXTURES = [
    RatePrior.adaptive(),
    RatePrior(clean_mixture=((1.0, 1.0, 1.0), (3.0, 0.5, 1.0))),  # unequal weights, a fraction
    RatePrior(clean_mixture=((1.0, 2.0, 5.0), (1.0, 1.0, 3.0)), bug=(2.0, 1.0)),
]


@pytest.mark.parametrize("prior", MIXTURES)
def test_mixture_posterior_matches_brute_force_integration(prior: RatePrior) -> None:
    n = 7
    numeric = _numeric_likelihoods(prior, n, RUNS)
    expected = [v / sum(numeric) for v in numeric]
    got = _per_candidate(_model(prior, n), n)
    for g, e in zip(got, expected, strict=True):
        assert math.isclose(g, e, rel_tol=1e-5)


@pytest.mark.parametrize("prior", MIXTURES)
def test_mixture_evidence_matches_brute_force_integration(prior: RatePrior) -> None:
    """The components' normalisers matter here (unlike in the posterior of one Beta)."""
    n = 7
    numeric = sum(_numeric_likelihoods(prior, n, RUNS)) / n
    assert math.isclose(_model(prior, n).log_evidence(), math.log(numeric), rel_tol=1e-5)


def test_the_components_weigh_by_the_clean_runs() -> None:
    """Rare clean-side symptoms put the weight on the components near 0, frequent ones not."""
    prior = RatePrior.adaptive()
    shares = {}
    for symptoms in (1, 20):
        model = RatePosterior(CandidateGraph.linear(4), bug_is_new=True, prior=prior)
        model.observe(OLD_END, symptoms, 100 - symptoms, first=True)
        model.observe(3, 40, 60, first=True)
        cell = model.snapshot().cells[0]
        shares[symptoms] = [w for w, _ in model.parts(cell)]
    assert shares[1][-1] > 0.5  # Beta(1, 64) for 1 in 100
    assert shares[20][-1] < 0.01  # 20 in 100
    assert shares[20][0] + shares[20][1] > 0.8


def test_one_component_is_the_single_beta() -> None:
    n = 7
    single = _per_candidate(_model(RatePrior(clean=(0.5, 3.0)), n), n)
    mixed = _per_candidate(_model(RatePrior(clean_mixture=((2.0, 0.5, 3.0),)), n), n)
    for a, b in zip(single, mixed, strict=True):
        assert math.isclose(a, b, rel_tol=1e-12)


def test_the_two_sided_search_takes_the_prior_it_is_given() -> None:
    for prior, default in ((RatePrior.adaptive(), False), (RatePrior(), True)):
        search = RateChangeBisection(
            CandidateGraph.linear(8), bug_is_new=True, prior=None if default else prior
        )
        for x, (s, f) in RUNS.items():
            search.record(x, symptoms=s, clean=f)
        expected = _per_candidate(_model(prior, 8), 8)
        for a, b in zip(search.posterior(), expected, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12)


def test_the_pessimistic_clean_rate_is_read_from_the_runs_alone() -> None:
    """The robust check must not inherit a clean prior's lean to 0: with one clean-side
    symptom in 60 runs, the mixture's and Beta(1/2, 1)'s 90% quantiles are lower than
    uniform Beta(1, 1)'s, yet the check gives the same mass under all three."""
    graph = CandidateGraph.linear(8)
    masses = []
    for prior in (RatePrior.adaptive(), RatePrior(clean=(0.5, 1.0)), RatePrior()):
        model = RatePosterior(graph, bug_is_new=True, prior=prior)
        for x, (s, f) in {OLD_END: (1, 59), 3: (1, 9), 4: (4, 6), 7: (30, 30)}.items():
            model.observe(x, s, f, first=True)
        post = model.snapshot()
        best = max(range(len(post.cells)), key=post.each)
        masses.append(model.robust_mass(post, best))
    assert 0.0 < masses[0] < 1.0
    for mass in masses[1:]:
        assert math.isclose(mass, masses[0], rel_tol=1e-12)


@pytest.mark.parametrize(
    ("mixture", "message"),
    [
        (((0.0, 1.0, 1.0),), "weights"),
        (((1.0, 0.0, 1.0),), "positive"),
        (((1.0, 1.0, -2.0),), "positive"),
    ],
)
def test_mixture_parameters_are_checked(
    mixture: tuple[tuple[float, float, float], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RatePrior(clean_mixture=mixture)
