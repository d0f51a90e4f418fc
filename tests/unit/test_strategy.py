"""Classic bisection: git bisect's answers, skips included, on lines and DAGs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finbisect.search.strategy import (
    OLD_END,
    AnswerStatus,
    CandidateGraph,
    ClassicBisection,
    SearchRequest,
)


def _drive(
    search: ClassicBisection,
    graph: CandidateGraph,
    culprit: int,
    skips: frozenset[int] = frozenset(),
) -> list[int]:
    """Answer every request as a deterministic repro would; return the visited indices."""
    visited = []
    while (request := search.next_request()) is not None:
        visited.append(request.index)
        if request.index in skips:
            search.record_skip(request.index)
            continue
        new = request.index != OLD_END and graph.is_new(request.index, culprit)
        bug = new == search.bug_is_new
        search.record(request.index, symptoms=int(bug), clean=int(not bug))
    return visited


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 100])
@pytest.mark.parametrize("bug_is_new", [True, False])
def test_finds_every_culprit_on_a_line(n: int, bug_is_new: bool) -> None:
    graph = CandidateGraph.linear(n)
    for culprit in range(n):
        search = ClassicBisection(graph, runs=1, bug_is_new=bug_is_new)
        visited = _drive(search, graph, culprit)
        answer = search.answer()
        assert answer.status is AnswerStatus.FOUND
        assert answer.culprit == culprit
        assert answer.confidence == 1.0
        assert visited[:2] == [OLD_END, n - 1]  # the ends are verified first
        assert len(visited) - 2 <= max(1, (n - 1).bit_length())


def test_requests_the_configured_number_of_runs() -> None:
    search = ClassicBisection(CandidateGraph.linear(4), runs=5, bug_is_new=True)
    assert search.next_request() == SearchRequest(OLD_END, 5)


def test_without_verification_the_ends_are_trusted() -> None:
    graph = CandidateGraph.linear(16)
    search = ClassicBisection(graph, runs=1, bug_is_new=True, verify=False)
    visited = _drive(search, graph, 15)
    assert OLD_END not in visited
    assert 15 not in visited
    assert search.answer().culprit == 15


@pytest.mark.parametrize(
    ("where", "symptoms", "status"),
    [
        (OLD_END, 1, AnswerStatus.OLD_END_SHOWS_BUG_SIDE),
        (3, 0, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE),
    ],
)
def test_a_wrong_end_stops_the_search(where: int, symptoms: int, status: AnswerStatus) -> None:
    search = ClassicBisection(CandidateGraph.linear(4), runs=1, bug_is_new=True)
    if where != OLD_END:
        search.record(OLD_END, symptoms=0, clean=1)
    search.record(where, symptoms=symptoms, clean=1 - symptoms)
    assert search.next_request() is None
    assert search.answer().status is status


def test_skipped_neighbours_make_the_answer_ambiguous() -> None:
    graph = CandidateGraph.linear(10)
    search = ClassicBisection(graph, runs=1, bug_is_new=True)
    _drive(search, graph, culprit=5, skips=frozenset({4, 5}))
    answer = search.answer()
    assert answer.status is AnswerStatus.AMBIGUOUS
    assert answer.candidates == (4, 5, 6)
    assert answer.probabilities == (None, None, None)


def _expected_line_answer(n: int, culprit: int, skips: frozenset[int]) -> tuple[int, ...]:
    """git bisect's answer: the skipped commits after the last testable good, up to the
    first testable bad (the new end is always testable)."""
    first_bad = min(i for i in range(culprit, n) if i not in skips)
    last_good = max((i for i in range(culprit) if i not in skips), default=-1)
    return tuple(range(last_good + 1, first_bad + 1))


@given(
    st.integers(min_value=1, max_value=60).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(min_value=0, max_value=n - 1),
            st.frozensets(st.integers(min_value=0, max_value=max(0, n - 2)), max_size=n),
        )
    )
)
def test_line_with_skips_matches_git_bisect_semantics(
    case: tuple[int, int, frozenset[int]],
) -> None:
    n, culprit, skips = case
    skips = frozenset(s for s in skips if s < n - 1)  # the new end is verified, never skipped
    graph = CandidateGraph.linear(n)
    search = ClassicBisection(graph, runs=1, bug_is_new=True)
    _drive(search, graph, culprit, skips)
    expected = _expected_line_answer(n, culprit, skips)
    answer = search.answer()
    assert answer.candidates == expected
    assert answer.status is (AnswerStatus.FOUND if len(expected) == 1 else AnswerStatus.AMBIGUOUS)


@st.composite
def _dags(draw: st.DrawFn) -> tuple[CandidateGraph, int]:
    n = draw(st.integers(min_value=2, max_value=30))
    parents: dict[str, list[str]] = {"0": []}
    for i in range(1, n - 1):
        chosen = draw(st.sets(st.integers(min_value=0, max_value=i - 1), min_size=1, max_size=2))
        parents[str(i)] = [str(j) for j in sorted(chosen)]
    has_child = {p for ps in parents.values() for p in ps}
    parents[str(n - 1)] = [str(i) for i in range(n - 1) if str(i) not in has_child]
    graph = CandidateGraph.from_parents([str(i) for i in range(n)], parents)
    return graph, draw(st.integers(min_value=0, max_value=n - 1))


@given(_dags())
def test_finds_the_culprit_in_any_dag(case: tuple[CandidateGraph, int]) -> None:
    graph, culprit = case
    search = ClassicBisection(graph, runs=1, bug_is_new=True)
    _drive(search, graph, culprit)
    assert search.answer().culprit == culprit


def test_merge_ancestors_are_unions() -> None:
    #   0 - 1 - 3     3 merges 1 and 2
    #    \- 2 -/
    graph = CandidateGraph.from_parents(
        ["0", "1", "2", "3"], {"1": ["0"], "2": ["0"], "3": ["1", "2"], "0": ["outside"]}
    )
    assert graph.ancestors == (0b0001, 0b0011, 0b0101, 0b1111)
    with pytest.raises(ValueError, match="before its parent"):
        CandidateGraph.from_parents(["a", "b"], {"a": ["b"]})


def test_an_unverified_old_end_record_changes_nothing() -> None:
    graph = CandidateGraph.linear(8)
    search = ClassicBisection(graph, runs=1, bug_is_new=True, verify=False)
    search.record(OLD_END, symptoms=0, clean=1)  # e.g. a timing hunt's calibrated end
    assert search.remaining() == 8
    _drive(search, graph, culprit=5)
    assert search.answer().culprit == 5
