"""Linear histories' ancestor sets made on demand, and the searches' fast paths on them,
against the code they replaced (kept here as the oracle): the same choices, the same
answers, on lines with skips and on random DAGs."""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finbisect.search import multisection
from finbisect.search.ancestry import LinearAncestors, bits, interval
from finbisect.search.noisy import NoisyBisection
from finbisect.search.strategy import (
    OLD_END,
    CandidateGraph,
    ClassicBisection,
    SearchRequest,
    ambiguity_groups,
)


# -- the oracle: the code as it was before ancestry.py ----------------------------------
def old_bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def old_ancestors(shas: Sequence[str], parents: dict[str, list[str]]) -> tuple[int, ...]:
    index = {sha: i for i, sha in enumerate(shas)}
    ancestors: list[int] = []
    for i, sha in enumerate(shas):
        mask = 1 << i
        for parent in parents.get(sha, ()):
            j = index.get(parent)
            if j is not None:
                mask |= ancestors[j]
        ancestors.append(mask)
    return tuple(ancestors)


def old_groups(n: int, anc: Sequence[int], skipped: int) -> list[int]:
    everything = (1 << n) - 1
    testable = everything & ~skipped
    by_sig: dict[int, int] = {}
    for s in old_bits(skipped):
        sig = sum(1 << x for x in old_bits(testable) if anc[x] >> s & 1)
        by_sig[sig] = by_sig.get(sig, 0) | 1 << s
    groups = []
    for sig, members in by_sig.items():
        common = everything
        for x in old_bits(sig):
            common &= anc[x]
        group = members
        for d in old_bits(common & sig):
            if sum(1 << x for x in old_bits(testable) if anc[x] >> d & 1) == sig:
                group |= 1 << d
        if group.bit_count() > 1:
            groups.append(group)
    return groups


def old_linear_split(possible: int, skipped: int, limit: int) -> list[int]:
    lo = (possible & -possible).bit_length() - 1
    hi = possible.bit_length() - 1
    usable = [i for i in range(lo, hi) if not skipped >> i & 1]
    n = hi - lo + 1
    k = min(limit, len(usable))
    chosen: set[int] = set()
    for j in range(1, k + 1):
        target = lo + round(j * n / (k + 1)) - 1
        at = bisect.bisect_left(usable, target)
        near = sorted(
            (u for u in usable[max(0, at - k - 1) : at + k + 1] if u not in chosen),
            key=lambda u: (abs(u - target), u),
        )
        if near:
            chosen.add(near[0])
    return sorted(chosen)


class OldClassic(ClassicBisection):
    """ClassicBisection choosing as before: every revision's stored set scored in turn."""

    def __init__(self, graph: CandidateGraph, stored: tuple[int, ...], **kwargs: bool) -> None:
        super().__init__(graph, runs=1, **kwargs)
        self.stored = stored

    def _best_split(self) -> int | None:
        total = self._possible.bit_count()
        best, best_score = None, 0
        for i, ancestors in enumerate(self.stored):
            if self._skipped >> i & 1:
                continue
            below = (ancestors & self._possible).bit_count()
            score = min(below, total - below)
            if score > best_score:
                best, best_score = i, score
        return best

    def next_batch(self, limit: int) -> tuple[SearchRequest, ...]:
        first = self.next_request()
        if first is None or limit <= 1:
            return () if first is None else (first,)
        ends = self._pending_ends[:limit]
        if limit - len(ends) < 1 or self._possible.bit_count() < 2:
            cuts = []
        elif all(a == (1 << (i + 1)) - 1 for i, a in enumerate(self.stored)):
            cuts = old_linear_split(self._possible, self._skipped, limit - len(ends))
        else:
            cuts = multisection.split_points(
                self.stored, self._possible, self._skipped, limit - len(ends)
            )
        return tuple(SearchRequest(x, self.runs) for x in [*ends, *cuts])


# -- cases ----------------------------------------------------------------------------
def _line(n: int) -> tuple[CandidateGraph, tuple[int, ...]]:
    shas = [f"c{i}" for i in range(n)]
    parents = {sha: [shas[i - 1]] if i else ["outside"] for i, sha in enumerate(shas)}
    return CandidateGraph.from_parents(shas, parents), old_ancestors(shas, parents)


def _dag(n: int, rng: random.Random) -> tuple[CandidateGraph, tuple[int, ...]]:
    shas = [f"c{i}" for i in range(n)]
    parents = {
        sha: sorted({shas[rng.randrange(i)] for _ in range(rng.choice((1, 1, 2)))})
        for i, sha in enumerate(shas)
        if i
    }
    return CandidateGraph.from_parents(shas, parents), old_ancestors(shas, parents)


def _drive_both(
    graph: CandidateGraph,
    stored: tuple[int, ...],
    culprit: int,
    skips: frozenset[int],
    *,
    bug_is_new: bool,
    workers: int,
    flaky: random.Random | None = None,
) -> None:
    """Both searches answered alike, as a deterministic repro would (or at random, if
    `flaky`: contradictions may empty the possible culprits): the same requests (batches),
    the same answers."""
    new = ClassicBisection(graph, runs=1, bug_is_new=bug_is_new)
    old = OldClassic(graph, stored, bug_is_new=bug_is_new)
    while True:
        batch = new.next_batch(workers)
        assert batch == old.next_batch(workers)
        if not batch:
            break
        for request in batch:
            for search in (new, old):
                if request.index in skips:
                    search.record_skip(request.index)
                    continue
                side = request.index != OLD_END and culprit <= request.index
                bug = side == bug_is_new
                search.record(request.index, symptoms=int(bug), clean=int(not bug))
            if flaky is not None and flaky.random() < 0.3:
                culprit = flaky.randrange(len(graph))  # the next records may contradict
    assert new.answer() == old.answer()
    assert new.remaining() == old.remaining()


@settings(deadline=None)  # no timings: a loaded machine must not fail it
@given(st.integers(min_value=0, max_value=2**300))
def test_bits_are_the_old_bits(mask: int) -> None:
    assert bits(mask) == old_bits(mask)


def test_bits_refuse_a_negative_mask() -> None:
    with pytest.raises(ValueError, match="not negative"):
        bits(-1)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 64])
def test_a_line_is_made_lazily_with_the_old_sets(n: int) -> None:
    graph, stored = _line(n)
    assert isinstance(graph.ancestors, LinearAncestors)
    assert graph.is_linear
    assert tuple(graph.ancestors) == stored
    assert graph.ancestors == stored
    assert CandidateGraph(graph.shas, stored) == graph  # stored line sets become lazy too
    for index in range(n):
        for culprit in range(n):
            assert graph.is_new(index, culprit) == bool(stored[index] >> culprit & 1)
    if n:
        assert graph.ancestors[-1] == stored[-1]
        assert graph.ancestors[1:3] == stored[1:3]
    with pytest.raises(IndexError):
        graph.ancestors[n]


def test_a_merge_keeps_stored_sets() -> None:
    shas = ["a", "b", "c", "d"]
    parents = {"b": ["a"], "c": ["a"], "d": ["b", "c"]}
    graph = CandidateGraph.from_parents(shas, parents)
    assert not graph.is_linear
    assert graph.ancestors == (0b1, 0b11, 0b101, 0b1111)
    assert graph.is_new(3, 2)
    assert not graph.is_new(1, 2)
    # A line whose first commit is not the second's parent is no line either.
    split = CandidateGraph.from_parents(["a", "b", "c"], {"c": ["b"]})
    assert not split.is_linear
    assert split.ancestors == (0b1, 0b10, 0b110)


@settings(deadline=None)  # no timings: a loaded machine must not fail it
@given(
    st.integers(min_value=1, max_value=80).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(min_value=0, max_value=n - 1),
            st.frozensets(st.integers(min_value=0, max_value=max(0, n - 2)), max_size=n),
            st.booleans(),
            st.sampled_from([1, 1, 2, 3, 8]),
        )
    )
)
def test_lines_choose_as_before(case: tuple[int, int, frozenset[int], bool, int]) -> None:
    n, culprit, skips, bug_is_new, workers = case
    graph, stored = _line(n)
    _drive_both(graph, stored, culprit, skips, bug_is_new=bug_is_new, workers=workers)


@settings(deadline=None)  # no timings: a loaded machine must not fail it
@given(st.integers(min_value=0, max_value=10**6))
def test_flaky_answers_choose_as_before(seed: int) -> None:
    """Contradicting records (a flaky repro under --runs): on lines and DAGs alike."""
    rng = random.Random(seed)
    n = rng.randint(1, 40)
    graph, stored = _line(n) if rng.random() < 0.5 or n < 2 else _dag(n, rng)
    skips = frozenset(rng.sample(range(n), rng.randint(0, n // 3)))
    _drive_both(
        graph,
        stored,
        rng.randrange(n),
        skips,
        bug_is_new=rng.random() < 0.5,
        workers=rng.choice((1, 2, 3)),
        flaky=rng,
    )


@settings(deadline=None)  # no timings: a loaded machine must not fail it
@given(st.integers(min_value=0, max_value=10**6))
def test_dags_choose_as_before(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    graph, stored = _dag(n, rng)
    assert graph.ancestors == stored
    skips = frozenset(rng.sample(range(n - 1), rng.randint(0, (n - 1) // 3)))
    _drive_both(
        graph,
        stored,
        rng.randrange(n),
        skips,
        bug_is_new=rng.random() < 0.5,
        workers=rng.choice((1, 2, 4)),
    )


def test_the_middle_is_the_first_best_around_skips() -> None:
    # 0..9 possible: 4 splits 5/5; skipped, 5 leaves 6/4 and 3 leaves 4/6: 3 comes first.
    graph, stored = _line(10)
    for skipped in [{4}, {3, 4}, {3, 4, 5}, set(range(8)), set(range(9))]:
        new = ClassicBisection(graph, runs=1, bug_is_new=True, verify=False)
        old = OldClassic(graph, stored, bug_is_new=True, verify=False)
        for s in skipped:
            new.record_skip(s)
            old.record_skip(s)
        assert new.next_request() == old.next_request()
    search = ClassicBisection(graph, runs=1, bug_is_new=True, verify=False)
    search.record_skip(4)
    assert search.next_request() == SearchRequest(3, 1)


@settings(deadline=None)  # no timings: a loaded machine must not fail it
@given(
    st.integers(min_value=1, max_value=70).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=2**n - 1))
    )
)
def test_line_ambiguity_groups_are_the_old_ones(case: tuple[int, int]) -> None:
    n, skipped = case
    graph, stored = _line(n)
    assert ambiguity_groups(graph, skipped) == old_groups(n, stored, skipped)


@settings(deadline=None)  # no timings: a loaded machine must not fail it
@given(st.integers(min_value=0, max_value=10**6))
def test_dag_ambiguity_groups_are_the_old_ones(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 30)
    graph, stored = _dag(n, rng) if n > 1 else _line(n)
    skipped = rng.getrandbits(n) & rng.getrandbits(n)
    assert ambiguity_groups(graph, skipped) == old_groups(n, stored, skipped)


def test_a_noisy_search_sees_a_long_line_as_one() -> None:
    graph, _ = _line(3)
    assert NoisyBisection(graph, bug_is_new=True)._model.linear
    long = CandidateGraph.linear(100_000)
    assert NoisyBisection(long, bug_is_new=True)._model.linear
    assert interval(3, 5) == 0b111000
    assert interval(5, 4) == 0
