"""What to build ahead: the revisions the search asks for next after either outcome."""

from __future__ import annotations

import pytest

from finbisect.hunt.build_ahead import likely_next, wrong_guess
from finbisect.search.noisy import NoisyBisection
from finbisect.search.strategy import OLD_END, CandidateGraph, ClassicBisection, SearchRequest


def _classic(n: int, *, bug_is_new: bool = True, verify: bool = False) -> ClassicBisection:
    return ClassicBisection(CandidateGraph.linear(n), runs=1, bug_is_new=bug_is_new, verify=verify)


def test_the_ends_are_built_one_after_the_other() -> None:
    search = _classic(64, verify=True)
    first = search.next_request()
    assert first == SearchRequest(OLD_END, 1)
    assert likely_next(search, first, search.graph, bug_is_new=True) == [search.graph.new_end]


@pytest.mark.parametrize("bug_is_new", [True, False])
def test_bisection_builds_both_halves_midpoints(bug_is_new: bool) -> None:
    search = _classic(64, bug_is_new=bug_is_new)
    request = search.next_request()
    assert request is not None
    guesses = likely_next(search, request, search.graph, bug_is_new=bug_is_new)
    expected = set()
    for symptoms in (1, 0):
        trial = _classic(64, bug_is_new=bug_is_new)
        trial.record(request.index, symptoms=symptoms, clean=1 - symptoms)
        following = trial.next_request()
        assert following is not None
        expected.add(following.index)
    assert set(guesses) == expected
    assert len(guesses) == 2
    lower, upper = sorted(guesses)
    assert lower < request.index < upper


def test_the_search_itself_is_not_changed() -> None:
    search = _classic(64)
    request = search.next_request()
    assert request is not None
    likely_next(search, request, search.graph, bug_is_new=True)
    assert search.next_request() == request
    assert search.remaining() == 64


def _leaning_late() -> NoisyBisection:
    """A noisy search that knows the bad end always crashes and has seen revisions 4, 8
    and 12 clean 20 times each: the culprit is most likely after 16."""
    search = NoisyBisection(CandidateGraph.linear(32), bug_is_new=True, verify=False)
    search.record(31, symptoms=10, clean=0)
    for index in (4, 8, 12):
        search.record(index, symptoms=0, clean=20)
    return search


def test_the_more_likely_outcome_comes_first() -> None:
    search = _leaning_late()
    request = SearchRequest(16, 3)
    guesses = likely_next(search, request, search.graph, bug_is_new=True)
    after = {}
    for symptoms in (3, 0):
        trial = _leaning_late()
        trial.record(16, symptoms=symptoms, clean=3 - symptoms)
        following = trial.next_request()
        assert following is not None
        after[symptoms] = following.index
    assert after[0] > 16 > after[3]
    assert guesses == [after[0], after[3]]  # 16 is more likely clean: its follower first


def test_a_wrong_guess_is_none_of_the_likely_ones() -> None:
    graph = CandidateGraph.linear(64)
    request = SearchRequest(32, 1)
    (guess,) = wrong_guess(request, graph, [16, 48])
    assert guess not in (16, 48, 32)
    assert abs(guess - 32) <= 1  # near the likely ones: a realistic tree distance
    assert wrong_guess(SearchRequest(0, 1), CandidateGraph.linear(1), []) == []
