"""Which revision to test next, and when the answer is known. Pure: no I/O.

The candidates are the commits on the ancestry path from the old end
(excluded) to the new end (included), oldest first. The model is git
bisect's: exactly one candidate, the culprit, starts the new state, and a
commit is on the new side iff the culprit is among its ancestors (itself
included). Ancestor sets are Python ints used as bitsets, so merges cost
nothing extra and a step is a few big-int operations; on a linear history
they are made on demand and the choices compare indices (ancestry.py).

"Bug side" is where the symptom lives: the new side in a regression hunt,
the old side in a fix hunt. Searches are told which, and otherwise speak
only of symptom and clean runs at candidate indices.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from finbisect.models import Rate
from finbisect.search.ancestry import LinearAncestors, bits, interval, is_linear
from finbisect.search.multisection import split_points

__all__ = [
    "OLD_END",
    "Answer",
    "AnswerStatus",
    "CandidateGraph",
    "ClassicBisection",
    "Costs",
    "Search",
    "SearchRequest",
    "SearchSummary",
    "VisitCost",
    "ambiguity_groups",
    "bits",
]

OLD_END = -1  # index standing for the old endpoint, which is not a candidate


@dataclass(frozen=True)
class CandidateGraph:
    """Candidates in topological order (parents first) and their ancestor sets.

    A linear history's sets are made on demand (ancestry.LinearAncestors, whatever
    `ancestors` was given as), so `linear` says whether the searches may compare indices.
    """

    shas: tuple[str, ...]
    ancestors: Sequence[int]  # bit j of ancestors[i]: candidate j is an ancestor of i (or i)

    def __post_init__(self) -> None:
        if not isinstance(self.ancestors, LinearAncestors) and is_linear(self.ancestors):
            object.__setattr__(self, "ancestors", LinearAncestors(len(self.ancestors)))

    @classmethod
    def from_parents(
        cls, shas: Sequence[str], parents: Mapping[str, Sequence[str]]
    ) -> CandidateGraph:
        """`shas` oldest first; parents outside the candidate set are ignored."""
        index = {sha: i for i, sha in enumerate(shas)}
        inside = [[index[p] for p in parents.get(sha, ()) if p in index] for sha in shas]
        if all(its == ([i - 1] if i else []) for i, its in enumerate(inside)):
            return cls(tuple(shas), LinearAncestors(len(shas)))
        ancestors: list[int] = []
        for i, sha in enumerate(shas):
            mask = 1 << i
            for j in inside[i]:
                if j >= i:
                    raise ValueError(f"{sha} is listed before its parent {shas[j]}")
                mask |= ancestors[j]
            ancestors.append(mask)
        return cls(tuple(shas), tuple(ancestors))

    @classmethod
    def linear(cls, n: int) -> CandidateGraph:
        """A straight line of n candidates named "0".."n-1" (for tests and simulations)."""
        return cls(tuple(str(i) for i in range(n)), LinearAncestors(n))

    def __len__(self) -> int:
        return len(self.shas)

    @property
    def is_linear(self) -> bool:
        """No merges: candidate i's ancestors are candidates 0..i."""
        return isinstance(self.ancestors, LinearAncestors)

    @property
    def new_end(self) -> int:
        return len(self.shas) - 1

    @property
    def everything(self) -> int:
        return (1 << len(self.shas)) - 1

    def is_new(self, index: int, culprit: int) -> bool:
        """Would `index` be on the new side if `culprit` were the answer?"""
        if self.is_linear:
            return culprit <= index
        return bool(self.ancestors[index] >> culprit & 1)


@dataclass(frozen=True, kw_only=True)
class Costs:
    """What a visit costs, in seconds, before any is measured (searches that weigh costs)."""

    build_seconds: float = 300.0  # compiling a revision not built before
    run_seconds: float = 5.0  # one run of the repro
    visit_seconds: float = 1.0  # the fixed overhead of any visit (checkout, start-up)


@dataclass(frozen=True, kw_only=True)
class VisitCost:
    """What one visit cost, measured (Search.record_costs): a fresh build's seconds (None
    when nothing was compiled), the total run time, and how many of the runs showed the
    symptom, in how many of those seconds (a hung run waits, a clean one exits)."""

    build_seconds: float | None
    run_seconds: float
    runs: int
    symptom_runs: int = 0
    symptom_seconds: float = 0.0


@dataclass(frozen=True)
class SearchRequest:
    index: int  # candidate index, or OLD_END
    runs: int  # how many runs to make there in this visit


class AnswerStatus(enum.Enum):
    SEARCHING = "searching"
    FOUND = "found"
    AMBIGUOUS = "ambiguous"  # skipped revisions leave several candidates
    OLD_END_SHOWS_BUG_SIDE = "old end wrong"  # verification failed at the old end
    NEW_END_SHOWS_CLEAN_SIDE = "new end wrong"  # verification failed at the new end
    BUDGET_SPENT = "budget spent"
    RATES_INSEPARABLE = "rates inseparable"  # two-sided: the rates are too close to tell apart


@dataclass(frozen=True)
class Answer:
    status: AnswerStatus
    culprit: int | None = None
    candidates: tuple[int, ...] = ()
    probabilities: tuple[float | None, ...] = ()
    confidence: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SearchSummary:
    """What a search can say beyond its answer, for the reports."""

    posterior: tuple[float, ...] = ()  # probability per candidate (probabilistic searches)
    p: Rate | None = None  # the symptom rate per run at the bug side (one-sided noisy search)
    p_before: Rate | None = None  # two-sided search: the rate before the culprit
    p_after: Rate | None = None  # ... and from it on


class Search(Protocol):
    """What the session needs from any search strategy."""

    def next_request(self) -> SearchRequest | None:
        """The next visit, or None when `answer()` is final."""

    def next_batch(self, limit: int) -> tuple[SearchRequest, ...]:
        """Up to `limit` visits at distinct revisions, made together in one round and all
        recorded before the next question; empty when `answer()` is final.
        `next_batch(1)` is `(next_request(),)` (search/multisection.py)."""

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        """Runs made at `index` (unrelated runs are not counted: they carry nothing)."""

    def record_skip(self, index: int) -> None:
        """`index` cannot be tested (build failed, only unrelated runs)."""

    def answer(self) -> Answer: ...

    def remaining(self) -> int:
        """How many candidates the culprit may still be (for progress)."""

    def steps_left(self) -> int:
        """A rough estimate of visits still needed (for progress)."""

    def record_costs(self, index: int, cost: VisitCost) -> None:
        """What a visit to `index` cost (searches that weigh costs learn from it)."""

    def mark_built(self, indices: Iterable[int]) -> None:
        """Revisions whose interpreter is already built: visiting them costs no build."""

    def summary(self) -> SearchSummary:
        """Posterior and rates for the reports (empty for git bisect's search)."""

    def notes(self) -> tuple[str, ...]:
        """What the search decided along the way, for people (a change of model)."""


class ClassicBisection:
    """git bisect's search: a fixed number of runs per revision, any symptom decides.

    A revision is on the bug side if any run showed the symptom, on the clean
    side if none did and at least one run was clean, skipped otherwise. With
    `verify`, the two endpoints are tested first.
    """

    def __init__(
        self, graph: CandidateGraph, *, runs: int, bug_is_new: bool, verify: bool = True
    ) -> None:
        if len(graph) == 0:
            raise ValueError("no candidates")
        self.graph = graph
        self.runs = runs
        self.bug_is_new = bug_is_new
        self._possible = graph.everything  # culprits still consistent with what we saw
        self._skipped = 0
        self._status = AnswerStatus.SEARCHING
        self._pending_ends = [OLD_END, graph.new_end] if verify else []

    # -- Search protocol ---------------------------------------------------
    def next_request(self) -> SearchRequest | None:
        if self._status is not AnswerStatus.SEARCHING:
            return None
        if self._pending_ends:
            return SearchRequest(self._pending_ends[0], self.runs)
        best = self._best_split()
        if best is None:
            self._status = (
                AnswerStatus.FOUND if self._possible.bit_count() == 1 else AnswerStatus.AMBIGUOUS
            )
            return None
        return SearchRequest(best, self.runs)

    def next_batch(self, limit: int) -> tuple[SearchRequest, ...]:
        """The ends still to verify, then the revisions that cut the possible culprits into
        the most even parts (the ends' check and the first cuts share a round)."""
        first = self.next_request()
        if first is None or limit <= 1:
            return () if first is None else (first,)
        ends = self._pending_ends[:limit]
        cuts = split_points(self.graph.ancestors, self._possible, self._skipped, limit - len(ends))
        return tuple(SearchRequest(x, self.runs) for x in [*ends, *cuts])

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        if symptoms == 0 and clean == 0:
            self.record_skip(index)
            return
        is_new = (symptoms > 0) == self.bug_is_new
        if index == OLD_END and not self._pending_ends:
            return  # the old end is old by definition when not being verified
        if index in self._pending_ends:  # in any order: a round may verify both ends
            self._pending_ends.remove(index)
            if self._status is not AnswerStatus.SEARCHING:
                return  # the other end of the round failed first
            if index == OLD_END and is_new:
                self._status = AnswerStatus.OLD_END_SHOWS_BUG_SIDE
            elif index != OLD_END and not is_new:
                self._status = AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE
            return
        self._mark(index, is_new=is_new)

    def record_skip(self, index: int) -> None:
        if index in self._pending_ends:
            self._pending_ends.remove(index)  # the session refuses unbuildable endpoints itself
            return
        self._skipped |= 1 << index

    def answer(self) -> Answer:
        self.next_request()  # settle the status if the search just ended
        if self._status is AnswerStatus.FOUND:
            culprit = self._possible.bit_length() - 1
            return Answer(self._status, culprit, (culprit,), (1.0,), 1.0)
        candidates = tuple(bits(self._possible))
        if self._status is AnswerStatus.AMBIGUOUS:
            return Answer(self._status, None, candidates, (None,) * len(candidates), 0.0)
        return Answer(self._status, None, candidates)

    def remaining(self) -> int:
        return self._possible.bit_count()

    def steps_left(self) -> int:
        return len(self._pending_ends) + max(0, (self._possible.bit_count() - 1).bit_length())

    def record_costs(self, index: int, cost: VisitCost) -> None:
        pass  # git bisect's choice does not depend on costs

    def mark_built(self, indices: Iterable[int]) -> None:
        pass

    def summary(self) -> SearchSummary:
        return SearchSummary()

    def notes(self) -> tuple[str, ...]:
        return ()

    # -- internals ---------------------------------------------------------
    def _mark(self, index: int, *, is_new: bool) -> None:
        if is_new:
            self._possible &= self.graph.ancestors[index]
        else:
            self._possible &= ~self.graph.ancestors[index]
        # One request at a time never empties this (each is informative); the revisions of
        # a batch are chosen together, so runs that contradict each other (a flaky repro
        # under a fixed --runs) can: the answer is then AMBIGUOUS with no candidates.

    def _best_split(self) -> int | None:
        """The untested revision that splits the possible culprits most evenly (the first
        such, in index order)."""
        lo, hi = (
            (self._possible & -self._possible).bit_length() - 1,
            self._possible.bit_length() - 1,
        )
        if self.graph.is_linear and self._possible and self._possible == interval(lo, hi):
            return _middle(lo, hi, self._skipped)
        total = self._possible.bit_count()
        best, best_score = None, 0
        for i, ancestors in enumerate(self.graph.ancestors):
            if self._skipped >> i & 1:
                continue
            below = (ancestors & self._possible).bit_count()
            score = min(below, total - below)  # 0 when the answer would tell us nothing
            if score > best_score:
                best, best_score = i, score
        return best


def _middle(lo: int, hi: int, skipped: int) -> int | None:
    """_best_split on a line, where the possible culprits are lo..hi: testing i leaves
    k = i - lo + 1 of them below, so the score is min(k, total - k), highest first."""
    total = hi - lo + 1
    for score in range(total // 2, 0, -1):
        for k in sorted({score, total - score}):
            if not skipped >> (lo + k - 1) & 1:
                return lo + k - 1
    return None


def ambiguity_groups(graph: CandidateGraph, skipped: int) -> list[int]:
    """Sets of 2+ candidates that no buildable revision can tell apart.

    `skipped`: the bitset of revisions that cannot be tested. Skipped candidates
    whose culprit hypotheses put every testable revision on the same side form a
    group, with the one testable candidate (if any) that does the same.
    """
    if graph.is_linear:
        return _line_groups(len(graph), skipped)
    testable = graph.everything & ~skipped
    anc = graph.ancestors
    by_sig: dict[int, int] = {}
    for s in bits(skipped):
        sig = sum(1 << x for x in bits(testable) if anc[x] >> s & 1)
        by_sig[sig] = by_sig.get(sig, 0) | 1 << s
    groups = []
    for sig, members in by_sig.items():
        common = graph.everything
        for x in bits(sig):
            common &= anc[x]
        group = members
        for d in bits(common & sig):  # the one testable candidate with the same sides
            if sum(1 << x for x in bits(testable) if anc[x] >> d & 1) == sig:
                group |= 1 << d
        if group.bit_count() > 1:
            groups.append(group)
    return groups


def _line_groups(n: int, skipped: int) -> list[int]:
    """ambiguity_groups on a line: each run of consecutive skipped candidates is told apart
    by no revision, and neither is the testable candidate right after it (if any)."""
    groups, run = [], 0
    for s in bits(skipped):
        if run and not skipped >> (s - 1) & 1:
            groups.append(run)
            run = 0
        run |= 1 << s
    if run:
        groups.append(run)
    # With the candidate after each run: testable, or past the end.
    with_next = [run | (1 << run.bit_length() if run.bit_length() < n else 0) for run in groups]
    return [group for group in with_next if group.bit_count() > 1]
