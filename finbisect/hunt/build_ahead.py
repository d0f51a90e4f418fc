"""Build the revision the search will probably ask for next while the current one's runs go.

A hunt alternates builds (CPU bound) and runs; a run waiting on a hung or
sleeping interpreter leaves the CPUs idle. So once a revision is built, the
revisions the search would ask for next, after either outcome of its runs,
are built in a background thread, one at a time, at the lowest CPU priority
(proc.in_background: nice 19, so the runs being judged keep the CPU they
want). When the loop wants its next interpreter it `claim`s it: a build under
way for that revision is waited for, a build of another one is killed (make's
group gets TERM, so it deletes the target it was writing) and the loop builds
as it would have without building ahead.

Only one build runs at a time: the builder's trees and its `tree` attribute
are shared, and the loop never builds while a background build runs.
Revisions built ahead are in the cache like any other; a hunt that ends
leaves none running (`close`).
"""

from __future__ import annotations

import copy
import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from finbisect.build.builder import Builder, BuildResult
from finbisect.runs import proc
from finbisect.search.strategy import OLD_END, CandidateGraph, Search, SearchRequest

__all__ = ["GUESS_ENV", "AheadStats", "BuildAhead", "Guess", "likely_next", "wrong_guess"]

# Benchmarks only: "wrong" builds a revision the search will not ask for next, to
# measure what a miss costs a hunt (benchmarks/build_ahead.py).
GUESS_ENV = "FINBISECT_BUILD_AHEAD_GUESS"


class Guess(enum.Enum):
    LIKELY = "likely"  # the revisions the search would ask for next, most likely first
    WRONG = "wrong"  # benchmarks only: a revision it will not ask for (the cost of a miss)


@dataclass(frozen=True, kw_only=True)
class AheadStats:
    """What building ahead did in a hunt (for the report's notes and the benchmarks)."""

    started: int = 0  # builds begun in the background
    used: int = 0  # ... whose revision the loop then asked for (waited for or done)
    cancelled: int = 0  # ... killed because the loop asked for another revision

    def to_json(self) -> dict[str, int] | None:
        if not self.started:
            return None
        return {"started": self.started, "used": self.used, "stopped": self.cancelled}

    def message(self) -> str:
        return (
            f"built ahead while runs went: {self.started} revision(s), {self.used} then asked "
            f"for, {self.cancelled} stopped for another"
        )


def likely_next(
    search: Search, request: SearchRequest, graph: CandidateGraph, *, bug_is_new: bool
) -> list[int]:
    """The indices the search would ask for after `request`'s runs, most likely outcome first.

    Each outcome is tried on a copy of the search: every run showed the symptom,
    or none did. The order follows the posterior's mass on the bug side of the
    revision (where the search has one).
    """
    outcomes = ((request.runs, 0), (0, request.runs))
    if _symptom_probability(search, request.index, graph, bug_is_new=bug_is_new) < 0.5:
        outcomes = outcomes[::-1]
    wanted: list[int] = []
    for symptoms, clean in outcomes:
        trial = copy.deepcopy(search, {id(graph): graph})  # the graph is immutable: shared
        trial.record(request.index, symptoms=symptoms, clean=clean)
        following = trial.next_request()
        if following is not None and following.index not in (request.index, *wanted):
            wanted.append(following.index)
    return wanted


def wrong_guess(request: SearchRequest, graph: CandidateGraph, likely: list[int]) -> list[int]:
    """The candidate nearest the likely ones that is none of them: a miss, built in a
    tree and at a distance like a real guess."""
    target = sum(likely) / len(likely) if likely else request.index
    others = [i for i in range(len(graph.shas)) if i not in likely and i != request.index]
    return [min(others, key=lambda i: abs(i - target))] if others else []


def _symptom_probability(
    search: Search, index: int, graph: CandidateGraph, *, bug_is_new: bool
) -> float:
    """P(a run at `index` is on the bug side), from the posterior; 0.5 without one."""
    posterior = search.summary().posterior
    if not posterior or index == OLD_END:
        return 0.5
    new_side = sum(p for c, p in enumerate(posterior) if graph.is_new(index, c))
    return new_side if bug_is_new else 1.0 - new_side


class BuildAhead:
    """One background build at a time, of revisions the loop is likely to want next."""

    def __init__(self, builder: Builder, *, enabled: bool = True) -> None:
        self.builder = builder
        self.enabled = enabled
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._queue: list[str] = []  # shas still to build in this batch, in order
        self._stopped = False  # the loop has claimed: a guess still being made builds nothing
        self._building: str | None = None  # the sha under way
        self._done: dict[str, BuildResult] = {}  # built ahead, not claimed yet
        self._failed: dict[str, BaseException] = {}  # machine errors, raised when claimed
        self._stats = AheadStats()
        self.problem = ""  # why building ahead stopped working, for the end of the hunt

    @property
    def stats(self) -> AheadStats:
        return self._stats

    @property
    def busy(self) -> bool:
        """A guess or a build is under way."""
        return self._thread is not None and self._thread.is_alive()

    def built(self) -> list[str]:
        """Revisions built ahead and not yet claimed (the search may count them as built)."""
        with self._lock:
            return [sha for sha, result in self._done.items() if result.ok]

    def start(self, guess: Callable[[], Sequence[str]]) -> None:
        """In the background: ask `guess` which revisions to build (the search's planning
        may take a while on a long history), then build them in order, those not built
        yet. Nothing if building ahead is off or a build is still under way."""
        if not self.enabled:
            return
        if self._thread is not None:
            if self._thread.is_alive():
                return
            self._thread.join()
        self._queue, self._stopped = [], False
        self._cancel.clear()
        self._thread = threading.Thread(target=self._work, args=(guess,), name="finbisect-ahead")
        self._thread.start()

    def _work(self, guess: Callable[[], Sequence[str]]) -> None:
        def unbuilt(sha: str) -> bool:
            return sha not in self._done and not self.builder.cache.has(
                self.builder.fingerprint, sha
            )

        try:
            wanted = [sha for sha in guess() if unbuilt(sha)]
        except Exception as exc:  # builds nothing ahead; the hunt goes on and says why at the end
            self.problem = self.problem or f"guessing the next revision failed: {exc!r}"
            return
        with self._lock:
            if self._stopped:  # the loop moved on while the guess was made
                return
            self._queue = wanted
        with proc.in_background(self._cancel):
            while not self._cancel.is_set():
                with self._lock:
                    if not self._queue:
                        return
                    sha = self._building = self._queue.pop(0)
                self._stats = _count(self._stats, started=1)
                try:
                    result = self.builder.build(sha)
                except KeyboardInterrupt:  # cancelled: its group is already killed
                    return
                except Exception as exc:  # raised where the loop claims this revision
                    with self._lock:
                        self._failed[sha] = exc
                    return
                finally:
                    with self._lock:
                        self._building = None
                with self._lock:
                    self._done[sha] = result

    def claim(self, sha: str) -> BuildResult | None:
        """The loop wants `sha` now: its background build (waited for) or None.

        A revision already in the cache leaves the background build alone (the loop
        takes it from the cache meanwhile: a revisit); any other one cancels it, and
        on None the loop builds as usual.
        """
        thread, killed = self._thread, False
        if thread is not None:
            with self._lock:
                building = self._building
                revisit = sha != building and sha not in self._queue
                if revisit and self.builder.cache.has(self.builder.fingerprint, sha):
                    return None
                self._queue, self._stopped = [], True  # nothing more after the build under way
            if building != sha:
                self._cancel.set()
                killed = building is not None
            thread.join()
            self._thread = None
        with self._lock:
            failure = self._failed.pop(sha, None)
            result = self._done.pop(sha, None)
        if failure is not None:
            raise failure
        self._stats = _count(self._stats, used=result is not None, cancelled=killed)
        return result

    def close(self) -> None:
        """Cancel whatever is under way and wait for it: nothing is left running."""
        if self._thread is not None:
            self._cancel.set()
            self._thread.join()
            self._thread = None


def _count(stats: AheadStats, *, started: int = 0, used: int = 0, cancelled: int = 0) -> AheadStats:
    return AheadStats(
        started=stats.started + started,
        used=stats.used + used,
        cancelled=stats.cancelled + cancelled,
    )
