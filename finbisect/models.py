"""Plain data shared by every layer: commits, run outcomes, verdicts, results.

Frozen, keyword-only dataclasses and enums, each owning its JSON: one writer
(`to_json`) and one reader (`from_json`) per shape, so the saved hunt state and
the `--json` result can never drift apart. Documents carry a `version`;
readers refuse versions they do not know (`SchemaError`).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finbisect.links import issue_refs

__all__ = [
    "RESULT_VERSION",
    "Commit",
    "Flavour",
    "HuntKind",
    "Outcome",
    "OutcomeKind",
    "Rate",
    "Result",
    "RunClass",
    "SchemaError",
    "Slowdown",
    "Step",
    "TimingSummary",
    "Verdict",
    "check_version",
]

RESULT_VERSION = 1  # the --json document (README "JSON"); fields are only ever added


class SchemaError(ValueError):
    """A JSON document this finbisect cannot read (unknown version, missing fields)."""


class Flavour(enum.StrEnum):
    """CPython build flavours (README: `--flavour`)."""

    RELEASE = "release"
    PYDEBUG = "pydebug"  # assertions + debug allocator: many races become reliable crashes
    ASAN = "asan"  # use-after-free at exit becomes a deterministic AddressSanitizer report
    TSAN = "tsan"  # data races reported by ThreadSanitizer (3.13+)
    NOGIL = "nogil"  # the free-threaded build (3.13+)


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

    def to_json(self) -> dict[str, Any]:
        return {
            "sha": self.sha,
            "subject": self.subject,
            "author": self.author,
            "date": self.date,
            "refs": issue_refs(self.message),
        }


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One run of the repro against one interpreter."""

    kind: OutcomeKind
    run_class: RunClass
    returncode: int | None  # None when killed by a signal or timed out
    signal: int | None  # the signal that ended it, if any
    duration: float  # seconds
    signature: str = ""  # the line that identifies a crash/error (first match or first fatal line)
    log_path: str = ""  # full output of this run (on `worker`'s machine, if any)
    worker: str = ""  # the Dask worker that ran it; "" here

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "class": self.run_class.value,
            "returncode": self.returncode,
            "signal": self.signal,
            "duration": round(self.duration, 3),
            "signature": self.signature,
            "log": self.log_path,
        } | ({"worker": self.worker} if self.worker else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            kind=OutcomeKind(data["kind"]),
            run_class=RunClass(data["class"]),
            returncode=data["returncode"],
            signal=data["signal"],
            duration=data["duration"],
            signature=data["signature"],
            log_path=data["log"],
            worker=data.get("worker", ""),
        )


@dataclass(frozen=True, kw_only=True)
class TimingSummary:
    """A timing hunt's measurement of one revision (pyperf values, summarised)."""

    mean_ms: float
    stdev_ms: float
    samples: int
    confidence: float = 1.0  # that the revision's class (good- or bad-like) is right

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_ms": round(self.mean_ms, 3),
            "stdev_ms": round(self.stdev_ms, 3),
            "samples": self.samples,
            "confidence": self.confidence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingSummary:
        return cls(
            mean_ms=data["mean_ms"],
            stdev_ms=data["stdev_ms"],
            samples=data["samples"],
            confidence=data.get("confidence", 1.0),
        )


@dataclass(frozen=True, kw_only=True)
class Step:
    """One tested revision: its build, its runs, the verdict drawn.

    A visit is one Step; `merge_visits` merges a revision's visits into one.
    """

    commit: Commit
    verdict: Verdict
    reason: str  # why this verdict, one line ("3 of 3 runs crashed", "build failed: ...")
    outcomes: tuple[Outcome, ...] = ()
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    cached: bool = False  # the interpreter came from an earlier build
    build_log: str = ""
    timing: TimingSummary | None = None  # timing hunts
    built_by: str = ""  # the Dask worker that built it (or had it cached); "" here

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    @property
    def symptoms(self) -> int:
        return sum(1 for o in self.outcomes if o.run_class is RunClass.SYMPTOM)

    @property
    def clean(self) -> int:
        return sum(1 for o in self.outcomes if o.run_class is RunClass.CLEAN)

    def outcome_counts(self) -> dict[str, int]:
        """Counts per kind, with non-symptom failures reported as "unrelated"."""
        counts = {kind.value: 0 for kind in OutcomeKind} | {RunClass.UNRELATED.value: 0}
        for outcome in self.outcomes:
            if outcome.run_class is RunClass.UNRELATED:
                counts[RunClass.UNRELATED.value] += 1
            else:
                counts[outcome.kind.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The step as the --json result and the saved hunt state both show it."""
        document: dict[str, Any] = {
            "sha": self.commit.sha,
            "subject": self.commit.subject,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "runs": self.runs,
            "symptoms": self.symptoms,
            "outcomes": self.outcome_counts(),
            "build_seconds": round(self.build_seconds, 3),
            "run_seconds": round(self.run_seconds, 3),
            "cached": self.cached,
            "build_log": self.build_log,
            "each_run": [outcome.to_json() for outcome in self.outcomes],
        }
        if self.timing is not None:
            document["timing"] = self.timing.to_json()
        if self.built_by:
            document["built_by"] = self.built_by
        if ran_by := sorted({o.worker for o in self.outcomes if o.worker}):
            document["ran_by"] = ran_by
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        timing = data.get("timing")
        return cls(
            commit=Commit(sha=data["sha"], subject=data["subject"]),
            verdict=Verdict(data["verdict"]),
            reason=data["reason"],
            outcomes=tuple(Outcome.from_json(o) for o in data["each_run"]),
            build_seconds=data["build_seconds"],
            run_seconds=data["run_seconds"],
            cached=data["cached"],
            build_log=data["build_log"],
            timing=TimingSummary.from_json(timing) if timing is not None else None,
            built_by=data.get("built_by", ""),
        )


@dataclass(frozen=True, kw_only=True)
class Rate:
    """A symptom rate per run: posterior mean and 90% interval."""

    estimate: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rate:
        return cls(estimate=data["estimate"], low=data["low"], high=data["high"])


@dataclass(frozen=True, kw_only=True)
class Slowdown:
    """A timing hunt's change at the culprit: its mean minus its parent's."""

    ms: float
    percent: float

    @classmethod
    def between(cls, before: TimingSummary, after: TimingSummary) -> Slowdown:
        ms = after.mean_ms - before.mean_ms
        return cls(ms=ms, percent=ms / before.mean_ms * 100.0)

    def to_json(self) -> dict[str, float]:
        return {"ms": round(self.ms, 3), "percent": round(self.percent, 2)}


@dataclass(frozen=True, kw_only=True)
class Result:
    """The answer of a hunt, with everything the reports need."""

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
    built_ahead: Mapping[str, int] | None = None  # {started, used, stopped}: build_ahead.py
    wall_seconds: float = 0.0
    command: str = ""  # the command line that reproduces the hunt
    build: str = ""  # the build configuration, for people
    candidate_shas: tuple[str, ...] = ()  # the whole candidate range, oldest first
    posterior: tuple[float, ...] = ()  # noisy search: probability per candidate
    p: Rate | None = None  # noisy search: symptom rate at the bad side
    p_before: Rate | None = None  # two-sided search: the rate before the culprit
    p_after: Rate | None = None  # ... and from it on
    notes: tuple[str, ...] = ()  # what the search decided along the way (a change of model)
    status: str = ""  # the search's final status (found, ambiguous, rates inseparable, ...)
    slowdown: Slowdown | None = None  # timing hunts, when a culprit was named
    timing_table: str = ""  # timing hunts: a pyperf compare_to style table (Markdown)
    warnings: tuple[str, ...] = ()  # e.g. a noisy machine; shown, never fatal
    cpython_links: bool = False  # the commits are CPython's: link them on GitHub
    # The symptom caught under gdb at the first bad revision (runs.evidence's JSON),
    # the culprit's changes found on its stacks, and why there is none (e.g. no gdb).
    evidence: Mapping[str, Any] | None = None
    evidence_hits: tuple[str, ...] = ()
    evidence_note: str = ""

    @property
    def runs(self) -> int:
        return sum(step.runs for step in self.steps)

    @property
    def probabilistic(self) -> bool:
        """Does the confidence come from a model (noisy search, timings) rather than logic?"""
        return self.p is not None or self.p_after is not None or self.slowdown is not None

    def padded_probabilities(self) -> list[float | None]:
        """One probability per candidate (None where the search cannot say)."""
        return list(self.probabilities) or [None] * len(self.candidates)

    def to_json(self) -> dict[str, Any]:
        """The --json document (README "JSON")."""
        document: dict[str, Any] = {
            "version": RESULT_VERSION,
            "hunt": self.hunt.value,
            "good": self.good.sha,
            "bad": self.bad.sha,
            "culprit": self.culprit.to_json() if self.culprit is not None else None,
            "candidates": [
                {"sha": c.sha, "subject": c.subject, "probability": p}
                for c, p in zip(self.candidates, self.padded_probabilities(), strict=True)
            ],
            "confidence": self.confidence,
            "steps": [step.to_json() for step in self.steps],
            "builds": self.builds,
            "cached_builds": self.cached_builds,
            **({"built_ahead": dict(self.built_ahead)} if self.built_ahead else {}),
            "runs": self.runs,
            "wall_seconds": round(self.wall_seconds, 3),
            "workers": _workers(self.steps),
        }
        if self.p is not None:
            document["p"] = self.p.to_json()
        if self.p_before is not None and self.p_after is not None:
            document["p_before"] = self.p_before.to_json()
            document["p_after"] = self.p_after.to_json()
        if self.notes:
            document["notes"] = list(self.notes)
        if self.slowdown is not None:
            document["slowdown"] = self.slowdown.to_json()
        if self.warnings:
            document["warnings"] = list(self.warnings)
        if self.evidence is not None:
            document["evidence"] = {**self.evidence, "culprit_frames": list(self.evidence_hits)}
        if self.evidence_note:
            document["evidence_note"] = self.evidence_note
        return document


def _workers(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    """The Dask workers that did a hunt's work, with their builds and runs ([] here)."""
    built = Counter(s.built_by for s in steps if s.built_by)
    ran = Counter(o.worker for s in steps for o in s.outcomes if o.worker)
    return [{"address": a, "builds": built[a], "runs": ran[a]} for a in sorted(built | ran)]


def check_version(data: object, version: int, what: str) -> dict[str, Any]:
    """`data` as a dict if it is a document of `version`; SchemaError saying why not."""
    if not isinstance(data, dict):
        raise SchemaError(f"{what} is not a JSON object")
    found = data.get("version")
    if found != version:
        raise SchemaError(
            f"{what} has version {found!r}; this finbisect reads version {version} "
            "(written by another finbisect version)"
        )
    return data
