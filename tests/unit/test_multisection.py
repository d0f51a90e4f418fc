"""next_batch(W): k-way multisection for W workers (issue #12), every search."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finbisect.search.model_choice import AutoBisection
from finbisect.search.multisection import (
    BatchCandidate,
    Channel,
    first_symptom_information,
    plan_batch,
    split_points,
)
from finbisect.search.noisy import NoisyBisection
from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.stats import binary_entropy, split_information
from finbisect.search.strategy import (
    OLD_END,
    AnswerStatus,
    CandidateGraph,
    ClassicBisection,
    Costs,
    Search,
    SearchRequest,
)
from finbisect.testing.simulate import RoundCosts, simulate_hunt, simulate_rounds

_COSTS = Costs(build_seconds=20.0, run_seconds=1.0, visit_seconds=1.0)
_ROUNDS = RoundCosts(build_seconds=20.0, run_seconds=1.0, visit_seconds=1.0)
Make = Callable[[CandidateGraph], Search]

SEARCHES: dict[str, Make] = {
    "classic": lambda g: ClassicBisection(g, runs=2, bug_is_new=True),
    "noisy": lambda g: NoisyBisection(g, bug_is_new=True, costs=_COSTS),
    "noisy fix": lambda g: NoisyBisection(g, bug_is_new=False, costs=_COSTS),
    "two-sided": lambda g: RateChangeBisection(g, bug_is_new=True, costs=_COSTS),
    "auto": lambda g: AutoBisection(g, bug_is_new=True, costs=_COSTS),
}


@st.composite
def _graphs(draw: st.DrawFn) -> CandidateGraph:
    """A line, or a DAG with merges (each commit has one or two parents in the range)."""
    n = draw(st.integers(min_value=1, max_value=40))
    if n < 3 or draw(st.booleans()):
        return CandidateGraph.linear(n)
    parents: dict[str, list[str]] = {"0": []}
    for i in range(1, n - 1):
        chosen = draw(st.sets(st.integers(min_value=0, max_value=i - 1), min_size=1, max_size=2))
        parents[str(i)] = [str(j) for j in sorted(chosen)]
    has_child = {p for ps in parents.values() for p in ps}  # the new end merges the tips
    parents[str(n - 1)] = [str(i) for i in range(n - 1) if str(i) not in has_child]
    return CandidateGraph.from_parents([str(i) for i in range(n)], parents)


def _visit(
    search: Search, graph: CandidateGraph, batch: tuple[SearchRequest, ...], culprit: int, p: float
) -> None:
    """Record a round's runs as a one-sided repro at rate p (regression hunts)."""
    rng = random.Random(culprit * 1000 + len(batch))
    for request in batch:
        bug = request.index != OLD_END and graph.is_new(request.index, culprit)
        if isinstance(search, NoisyBisection) and not search.bug_is_new:
            bug = not bug
        symptoms = sum(rng.random() < p for _ in range(request.runs)) if bug else 0
        search.record(request.index, symptoms=symptoms, clean=request.runs - symptoms)


# -- properties of every search's batches -------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    graph=_graphs(),
    kind=st.sampled_from(sorted(SEARCHES)),
    limits=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=6),
    culprit_at=st.floats(min_value=0.0, max_value=0.999),
    p=st.sampled_from([1.0, 0.4]),
)
def test_batches_are_distinct_in_range_and_extend_next_request(
    graph: CandidateGraph, kind: str, limits: list[int], culprit_at: float, p: float
) -> None:
    search = SEARCHES[kind](graph)
    culprit = int(culprit_at * len(graph))
    for limit in limits:
        request = search.next_request()
        assert search.next_batch(1) == (() if request is None else (request,))
        batch = search.next_batch(limit)
        assert (batch == ()) == (request is None)
        if request is None:
            return
        if kind != "classic" or request.index == OLD_END:  # classic: cuts chosen jointly
            assert batch[0] == request  # the search's own choice leads its round
        assert len(batch) <= limit
        assert len({r.index for r in batch}) == len(batch)
        assert all(r.index == OLD_END or 0 <= r.index < len(graph) for r in batch)
        assert all(r.runs >= 1 for r in batch)
        _visit(search, graph, batch, culprit, p)


@pytest.mark.parametrize(("kind", "p"), [("classic", 1.0), ("noisy", 0.3), ("auto", 0.3)])
def test_a_batch_of_one_is_todays_search(kind: str, p: float) -> None:
    """Driven by next_batch(1), each search makes exactly the requests next_request makes."""
    graph = CandidateGraph.linear(200)
    sequences = []
    for ask in ("request", "batch"):
        search, rng, requests = SEARCHES[kind](graph), random.Random(5), []
        while True:
            batch: tuple[SearchRequest, ...]
            if ask == "request":
                request = search.next_request()
                batch = () if request is None else (request,)
            else:
                batch = search.next_batch(1)
            if not batch:
                break
            requests.append(batch)
            for r in batch:
                bug = r.index != OLD_END and graph.is_new(r.index, 77)
                symptoms = sum(rng.random() < p for _ in range(r.runs)) if bug else 0
                search.record(r.index, symptoms=symptoms, clean=r.runs - symptoms)
        sequences.append((requests, search.answer()))
    assert sequences[0] == sequences[1]
    assert sequences[0][1].culprit == 77


# -- git bisect's search --------------------------------------------------------------------
_LINE = CandidateGraph.linear(16).ancestors


@pytest.mark.parametrize(
    ("possible", "skipped", "limit", "expected"),
    [
        (0xFFFF, 0, 1, [7]),  # halves
        (0xFFFF, 0, 3, [3, 7, 11]),  # quarters: testing i leaves i + 1 below
        (0xFFFF, 0, 15, list(range(15))),  # every informative revision
        (0xFFFF, 0, 40, list(range(15))),  # ... and no more
        (0x00F0, 0, 3, [4, 5, 6]),  # only inside the possible range (4..7)
        (0xFFFF, 1 << 7, 1, [6]),  # a skipped cut moves to its neighbour
        (0x00F0, 0b0111_0000, 3, []),  # the only cuts are unbuildable
        (0x0100, 0, 3, []),  # one culprit left: nothing to ask
    ],
)
def test_split_points_on_a_line(
    possible: int, skipped: int, limit: int, expected: list[int]
) -> None:
    assert split_points(_LINE, possible, skipped, limit) == expected


def test_split_points_across_a_merge() -> None:
    """Two branches of three merged at 6: the cuts split each branch, not one twice."""
    parents = {"1": ["0"], "2": ["1"], "3": ["0"], "4": ["3"], "5": ["4"], "6": ["2", "5"]}
    graph = CandidateGraph.from_parents([str(i) for i in range(7)], parents)
    points = split_points(graph.ancestors, graph.everything, 0, 2)
    assert points in ([1, 4], [2, 4])  # {0,1}|{2}|{3,4}|{5,6} or {0,1,2}|{3,4}|{5,6}


def _classic_hunt(graph: CandidateGraph, culprit: int, workers: int) -> tuple[int, int | None]:
    search = ClassicBisection(graph, runs=1, bug_is_new=True)
    stats = simulate_rounds(
        search, graph, workers=workers, culprit=culprit, p=1.0, rng=random.Random(0), costs=_ROUNDS
    )
    return stats.rounds, stats.result.culprit


def test_eight_workers_need_under_045x_the_rounds_over_1024_commits() -> None:
    graph = CandidateGraph.linear(1024)
    culprits = [*random.Random(12).sample(range(1024), 40), 0, 1, 1022, 1023]
    rounds = {1: 0, 8: 0}
    for culprit in culprits:
        for workers in rounds:
            taken, named = _classic_hunt(graph, culprit, workers)
            assert named == culprit
            rounds[workers] += taken
    assert rounds[8] <= 0.45 * rounds[1]


@given(_graphs(), st.integers(min_value=2, max_value=6), st.floats(0.0, 0.999))
def test_classic_batches_find_the_culprit_in_any_dag(
    graph: CandidateGraph, workers: int, culprit_at: float
) -> None:
    culprit = int(culprit_at * len(graph))
    one = ClassicBisection(graph, runs=1, bug_is_new=True)
    alone = simulate_rounds(
        one, graph, workers=1, culprit=culprit, p=1.0, rng=random.Random(0), costs=_ROUNDS
    )
    rounds, named = _classic_hunt(graph, culprit, workers)
    assert named == culprit == one.answer().culprit
    assert rounds <= alone.rounds  # on a wide DAG (every commit a branch) no fewer


@pytest.mark.parametrize(
    ("results", "status"),
    [
        ({OLD_END: False, 15: True}, AnswerStatus.SEARCHING),  # either order, both fine
        ({15: True, OLD_END: True}, AnswerStatus.OLD_END_SHOWS_BUG_SIDE),
        ({OLD_END: True, 15: False}, AnswerStatus.OLD_END_SHOWS_BUG_SIDE),  # the first failure
        ({15: False, OLD_END: False}, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE),
    ],
)
def test_classic_verifies_both_ends_in_one_round(
    results: dict[int, bool], status: AnswerStatus
) -> None:
    search = ClassicBisection(CandidateGraph.linear(16), runs=1, bug_is_new=True)
    batch = search.next_batch(4)
    assert [r.index for r in batch] == [OLD_END, 15, 4, 10]  # the ends and the first cuts
    for index, symptom in results.items():
        search.record(index, symptoms=int(symptom), clean=int(not symptom))
    assert search.answer().status is status


def test_contradictory_runs_in_one_round_leave_no_candidate() -> None:
    """A flaky repro under a fixed --runs: 4 shows the symptom, 10 after it does not."""
    search = ClassicBisection(CandidateGraph.linear(16), runs=1, bug_is_new=True, verify=False)
    assert [r.index for r in search.next_batch(2)] == [4, 10]
    search.record(4, symptoms=1, clean=0)
    search.record(10, symptoms=0, clean=1)
    assert search.next_batch(2) == ()
    assert search.answer().status is AnswerStatus.AMBIGUOUS
    assert search.answer().candidates == ()


# -- the noisy searches ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("m", "t"), [(0.5, 1.0), (0.3, 0.2), (0.9, 0.05), (0.1, 0.6), (1.0, 0.5), (0.0, 0.5)]
)
def test_one_revision_tells_what_the_single_search_expects(m: float, t: float) -> None:
    assert math.isclose(
        first_symptom_information([(m, 0.0, t)]), split_information(m, t), abs_tol=1e-12
    )


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(0.25, 0.0, 1.0), (0.5, 0.0, 1.0), (0.75, 0.0, 1.0)], 2.0),  # quarters: 2 bits
        ([(0.75, 0.0, 1.0), (0.25, 0.0, 1.0), (0.5, 0.0, 1.0)], 2.0),  # in any order
        ([(0.5, 0.0, 1.0), (0.5, 0.0, 1.0)], 1.0),  # the same cut twice tells nothing more
        ([(0.5, 0.5, 0.5)], 0.0),  # both sides alike: nothing
        ([(0.5, 0.0, 0.5), (0.5, 0.0, 0.5)], split_information(0.5, 0.75)),  # two tries
    ],
)
def test_batch_information_tables(
    points: list[tuple[float, float, float]], expected: float
) -> None:
    assert math.isclose(first_symptom_information(points), expected, abs_tol=1e-12)


def test_two_sided_information_is_the_binary_channels() -> None:
    m, t0, t1 = 0.4, 0.1, 0.7
    h = binary_entropy
    expected = h(m * t1 + (1 - m) * t0) - m * h(t1) - (1 - m) * h(t0)
    assert math.isclose(first_symptom_information([(m, t0, t1)]), expected, abs_tol=1e-12)


def _channel(p: float) -> Channel:
    """One-sided, p known: P(no symptom in j runs) = (1 - p)^j."""
    quiet = tuple((1.0 - p) ** j for j in range(65))
    return Channel(
        clean_quiet=(1.0,) * 65,
        bug_quiet=quiet,
        batches=(1, 2, 4, 8, 16, 32, 64),
        run_seconds=1.0,
        visit_seconds=1.0,
    )


def _candidate(index: int, mass: float, *, built: bool = True) -> BatchCandidate:
    return BatchCandidate(
        index=index, bug_mass=mass, fixed_seconds=1.0 if built else 21.0, max_runs=200
    )


def test_a_batch_adds_only_revisions_worth_their_runs() -> None:
    """Next to a revision at mass 0.999, one at 0.6 is worth its runs; 0.999 is not."""
    first = _candidate(10, 0.4)
    batch = plan_batch(
        first, 4, [_candidate(20, 0.999), _candidate(30, 0.6)], _channel(0.3), limit=3, budget=500
    )
    assert [index for index, _ in batch] == [10, 30]


@pytest.mark.parametrize("p", [1.0, 0.3, 0.05])
def test_added_revisions_take_no_more_runs_than_alone(p: float) -> None:
    channel = _channel(p)
    masses = [0.1 * i for i in range(1, 10)]
    options = [_candidate(i, m, built=i % 2 == 0) for i, m in enumerate(masses)]
    batch = plan_batch(_candidate(99, 0.45, built=False), 4, options, channel, limit=6, budget=500)
    assert len(batch) == 6
    for index, runs in batch[1:]:
        assert 1 <= runs <= channel.own_batch(masses[index])


def test_the_budget_bounds_a_batch() -> None:
    options = [_candidate(i, 0.1 * i) for i in range(1, 10)]
    batch = plan_batch(_candidate(0, 0.45), 4, options, _channel(0.05), limit=8, budget=10)
    assert sum(runs for _, runs in batch) <= 10


def test_noisy_ends_go_one_per_round() -> None:
    search = NoisyBisection(CandidateGraph.linear(64), bug_is_new=True, costs=_COSTS)
    assert search.next_batch(8) == (SearchRequest(63, 3),)  # calibration first, alone
    search.record(63, symptoms=3, clean=0)
    (verify,) = search.next_batch(8)
    assert verify.index == OLD_END


def test_noisy_batch_spreads_over_the_range() -> None:
    """At p = 1, a round of 4 cuts the range into pieces, not 4 neighbours of one cut."""
    graph = CandidateGraph.linear(1024)
    search = NoisyBisection(graph, bug_is_new=True, costs=_COSTS)
    while (batch := search.next_batch(4))[0].index in (1023, OLD_END):
        _visit(search, graph, batch, 300, 1.0)
    cuts = sorted(r.index for r in batch)
    assert len(cuts) == 4
    assert min(b - a for a, b in itertools.pairwise(cuts)) >= 100


@pytest.mark.parametrize(("p", "workers"), [(0.3, 8), (0.1, 4), (0.1, 16)])
def test_flaky_batches_are_right_at_their_stated_confidence(p: float, workers: int) -> None:
    graph = CandidateGraph.linear(128)
    found = correct = 0
    for hunt in range(60):
        rng = random.Random(hunt)
        culprit = rng.randrange(128)
        search = NoisyBisection(graph, bug_is_new=True, costs=_COSTS)
        stats = simulate_rounds(
            search, graph, workers=workers, culprit=culprit, p=p, rng=rng, costs=_ROUNDS
        )
        found += stats.result.status is AnswerStatus.FOUND
        correct += stats.correct
    assert found >= 57  # the run budget is not spent on wide rounds
    assert correct / found >= 0.95


def test_flaky_batches_take_fewer_rounds() -> None:
    graph = CandidateGraph.linear(1024)
    rounds = {1: 0, 8: 0}
    for hunt in range(10):
        for workers in rounds:
            rng = random.Random(hunt)
            culprit = rng.randrange(1024)
            search = NoisyBisection(graph, bug_is_new=True, costs=_COSTS)
            stats = simulate_rounds(
                search, graph, workers=workers, culprit=culprit, p=0.3, rng=rng, costs=_ROUNDS
            )
            rounds[workers] += stats.rounds
    assert rounds[8] <= 0.5 * rounds[1]


# -- the simulation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("visits", "workers", "split", "seconds"),
    [
        ([(10, True)], 1, True, 1 + 20 + 10),
        ([(10, True)], 4, True, 1 + 20 + 3),  # 4 workers share the runs: ceil(10 / 4)
        ([(10, True)], 4, False, 1 + 20 + 10),
        ([(3, False)], 8, True, 1 + 1),  # one run each at most
        ([(10, False), (4, True)], 3, True, 1 + 20 + 2),  # the spare to the slowest
        ([], 4, True, 0.0),
    ],
)
def test_a_round_lasts_as_long_as_its_slowest_visit(
    visits: list[tuple[int, bool]], workers: int, split: bool, seconds: float
) -> None:
    costs = RoundCosts(build_seconds=20.0, run_seconds=1.0, visit_seconds=1.0, split_runs=split)
    assert costs.round(visits, workers) == seconds


def test_one_worker_rounds_are_the_sequential_hunt() -> None:
    graph = CandidateGraph.linear(256)
    sequential = simulate_hunt(
        NoisyBisection(graph, bug_is_new=True, costs=_COSTS),
        graph,
        culprit=100,
        p=0.3,
        bug_is_new=True,
        rng=random.Random(3),
    )
    rounds = simulate_rounds(
        NoisyBisection(graph, bug_is_new=True, costs=_COSTS),
        graph,
        workers=1,
        culprit=100,
        p=0.3,
        rng=random.Random(3),
        costs=_ROUNDS,
    )
    assert rounds.rounds == rounds.visits == sequential.visits
    assert rounds.runs == (
        sequential.search_runs + sequential.calibration_runs + sequential.endpoint_runs
    )
    assert rounds.result.culprit == sequential.culprit == 100
