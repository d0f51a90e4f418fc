"""Plain data shared by every layer: commits, run outcomes, verdicts, results.

Frozen, keyword-only dataclasses and enums; no behaviour beyond small derived
properties, so any module may import this one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Commit",
    "HuntKind",
    "Outcome",
    "OutcomeKind",
    "Result",
    "RunClass",
    "Step",
    "Verdict",
]


class OutcomeKind(enum.StrEnum):
    """What one run of the repro did."""

    OK = "ok"  # exited 0
    CRASH = "crash"  # killed by a signal, or printed "Fatal Python error"
    HANG = "hang"  # did not finish within the timeout; its process group was killed
    ERROR = "error"  # any other non-zero exit


class RunClass(enum.StrEnum):
    """What one run means for the hunt."""

    SYMPTOM = "symptom"  # the kind the user hunts (and, for crash/error, matching --match)
    CLEAN = "clean"  # exited 0
    UNRELATED = "unrelated"  # failed in a way that says nothing about the symptom


class Verdict(enum.StrEnum):
    """A revision's verdict in the user's terms: good = symptom absent."""

    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"


class HuntKind(enum.StrEnum):
    """Regression: good is the older end. Fix: bad is the older end."""

    REGRESSION = "regression"
    FIX = "fix"

    @property
    def new_verdict(self) -> Verdict:
        """The verdict of the newer side of the boundary (git bisect's "new")."""
        return Verdict.BAD if self is HuntKind.REGRESSION else Verdict.GOOD

    @property
    def phrase(self) -> str:
        return "introduced by" if self is HuntKind.REGRESSION else "fixed by"


@dataclass(frozen=True, kw_only=True)
class Commit:
    sha: str
    subject: str
    author: str = ""
    date: str = ""  # ISO 8601, author date
    message: str = ""  # full message, for issue references

    @property
    def short(self) -> str:
        return self.sha[:10]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One run of the repro against one interpreter."""

    kind: OutcomeKind
    run_class: RunClass
    returncode: int | None  # None when killed by a signal or timed out
    signal: int | None  # the signal that ended it, if any
    duration: float  # seconds
    signature: str = ""  # the line that identifies a crash/error (first match or first fatal line)
    log_path: str = ""  # full output of this run


@dataclass(frozen=True, kw_only=True)
class Step:
    """One tested revision (DESIGN's "observation"): its build, its runs, the verdict drawn.

    A visit is one Step; the report merges a revision's visits into one.
    """

    commit: Commit
    verdict: Verdict
    reason: str  # why this verdict, one line ("3 of 3 runs crashed", "build failed: ...")
    outcomes: tuple[Outcome, ...] = ()
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    cached: bool = False  # the interpreter came from an earlier build
    build_log: str = ""
    timing: Mapping[str, float] | None = None  # timing hunts: mean_ms, stdev_ms, samples

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    @property
    def symptoms(self) -> int:
        return sum(1 for o in self.outcomes if o.run_class is RunClass.SYMPTOM)

    def outcome_counts(self) -> dict[str, int]:
        """Counts per kind, with non-symptom failures reported as "unrelated"."""
        counts = {kind.value: 0 for kind in OutcomeKind} | {RunClass.UNRELATED.value: 0}
        for outcome in self.outcomes:
            if outcome.run_class is RunClass.UNRELATED:
                counts[RunClass.UNRELATED.value] += 1
            else:
                counts[outcome.kind.value] += 1
        return counts


@dataclass(frozen=True, kw_only=True)
class Result:
    """The answer of a hunt, with everything the report needs."""

    hunt: HuntKind
    good: Commit
    bad: Commit
    culprit: Commit | None  # None when inconclusive
    candidates: tuple[Commit, ...] = ()  # when ambiguous: the commits the answer may be
    probabilities: tuple[float | None, ...] = ()  # aligned with candidates
    confidence: float = 0.0
    steps: tuple[Step, ...] = ()
    builds: int = 0
    cached_builds: int = 0
    wall_seconds: float = 0.0
    command: str = ""  # the command line that reproduces the hunt
    build: str = ""  # the build configuration, for people
    candidate_shas: tuple[str, ...] = ()  # the whole candidate range, oldest first
    posterior: tuple[float, ...] = ()  # noisy search: probability per candidate
    p: tuple[float, float, float] | None = None  # noisy search: symptom rate (mean, low, high)
    timing_table: str = ""  # timing hunts: a pyperf compare_to style table (Markdown)
    warnings: tuple[str, ...] = ()  # e.g. a noisy machine; shown, never fatal
    extra: dict[str, object] = field(default_factory=dict)  # later issues' JSON fields

    @property
    def runs(self) -> int:
        return sum(step.runs for step in self.steps)
