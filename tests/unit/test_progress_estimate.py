"""The progress line's estimate: steps from the search's own expectation, an ETA from costs."""

from __future__ import annotations

import pytest

from finbisect.hunt.progress import eta_seconds
from finbisect.models import Commit, Step, Verdict
from finbisect.search.noisy import NoisyBisection
from finbisect.search.strategy import OLD_END, CandidateGraph


def _visits_of_a_reliable_hunt(n: int, culprit: int) -> tuple[list[int], int]:
    """(steps_left said before each visit, visits made): the symptom shows on every bad run."""
    search = NoisyBisection(CandidateGraph.linear(n), bug_is_new=True)
    said = []
    while (request := search.next_request()) is not None:
        said.append(search.steps_left())
        bad = request.index != OLD_END and request.index >= culprit
        search.record(request.index, symptoms=request.runs if bad else 0,
                      clean=0 if bad else request.runs)  # fmt: skip
    return said, len(said)


@pytest.mark.parametrize(("n", "culprit"), [(16, 5), (64, 40), (27, 13)])
def test_the_first_estimate_is_close_to_the_visits_a_reliable_hunt_makes(
    n: int, culprit: int
) -> None:
    said, visits = _visits_of_a_reliable_hunt(n, culprit)
    # From the bits its visits are expected to tell (measured as it goes), not a fixed
    # two visits per bit.
    assert abs(said[0] - visits) <= max(3, 0.35 * visits), (said, visits)
    assert said[-1] <= said[0] / 2  # near the end it says so


def test_the_estimate_comes_down_by_the_end() -> None:
    said, _ = _visits_of_a_reliable_hunt(64, 40)
    assert said[-1] < said[0]


def _step(build: float, run: float, *, cached: bool = False) -> Step:
    commit = Commit(sha="a" * 40, subject="s", author="a", date="d", message="s")
    return Step(commit=commit, verdict=Verdict.GOOD, reason="", build_seconds=build,
                run_seconds=run, cached=cached)  # fmt: skip


def test_eta_from_the_measured_build_and_run_costs() -> None:
    assert eta_seconds(5, []) is None
    visits = [_step(100.0, 2.0), _step(80.0, 4.0), _step(0.5, 3.0, cached=True)]
    # A fresh build costs 90 s on average (cached ones are free), a visit's runs 3 s.
    assert eta_seconds(4, visits) == pytest.approx(4 * (90.0 + 3.0))
    assert eta_seconds(2, [_step(0.1, 1.0, cached=True)]) == pytest.approx(2.0)
