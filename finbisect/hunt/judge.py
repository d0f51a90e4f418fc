"""What judges a revision, behind one interface the hunt loop uses without knowing which.

`RunJudge` runs the repro and classifies each run (crash, hang, error, ok);
`TimingJudge` times it with pyperf (`--symptom slow`). Each says which search
its verdicts drive, what to do before the search (timing measures both ends
first), how a revision's visit is judged, what the search records from it,
and what it adds to the final answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from finbisect.errors import EndpointError
from finbisect.hunt.options import HuntOptions
from finbisect.hunt.steps import runs_verdict
from finbisect.models import Commit, Outcome, Slowdown, Step, TimingSummary, Verdict
from finbisect.repo.gitrepo import Hunt
from finbisect.runs.probe import Probe, ProbeConfig
from finbisect.runs.timing import TimingConfig, TimingProbe, compare_table, hunt_confidence
from finbisect.search.model_choice import AutoBisection
from finbisect.search.noisy import NoisyBisection
from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.strategy import ClassicBisection, Search

__all__ = ["Conclusion", "Judge", "Judged", "RunJudge", "TimingJudge", "make_judge"]

Activity = Callable[[str], None]  # says what is happening (progress)
Builds = Callable[[str], Path]  # sha -> a built interpreter, or BuildError
Commits = Callable[[str], Commit]  # sha -> the commit


@dataclass(frozen=True, kw_only=True)
class Judged:
    """A visit's verdict, before the loop adds what the build cost."""

    verdict: Verdict
    reason: str
    outcomes: tuple[Outcome, ...] = ()
    timing: TimingSummary | None = None


@dataclass(frozen=True, kw_only=True)
class Conclusion:
    """What a judge adds to the answer (timing hunts: their own confidence and slowdown)."""

    confidence: float | None = None  # None: the search's confidence stands
    slowdown: Slowdown | None = None
    table: str = ""  # Markdown, pyperf compare_to style
    warnings: tuple[str, ...] = ()


class Judge(Protocol):
    def make_search(self, hunt: Hunt) -> Search:
        """The search its verdicts drive."""

    def prepare(
        self, hunt: Hunt, build: Callable[[str], Path], commit: Callable[[str], Commit]
    ) -> list[Step]:
        """Work before the search; the endpoint steps it produced, if any."""

    def seen(self, step: Step) -> None:
        """A resumed hunt's saved visit, replayed."""

    def visit(self, commit: Commit, interpreter: Path, runs: int, activity: Activity) -> Judged:
        """Judge `runs` runs (or a measurement) at `commit`."""

    def counts(self, step: Step) -> tuple[int, int]:
        """(symptom runs, clean runs) that the search records for a judged step."""

    def conclude(
        self, steps: tuple[Step, ...], culprit: Commit | None, baseline: tuple[str, ...]
    ) -> Conclusion:
        """Its part of the answer, from the merged steps; `baseline`: the revisions to compare
        the culprit with, preferred first (its first parent, then the old end)."""


class RunJudge:
    """Runs the repro and classifies every run (the probe contract)."""

    def __init__(self, options: HuntOptions, logs: Path, scratch: Path | None = None) -> None:
        self.options = options
        self.probe = Probe(
            ProbeConfig(
                repro=options.repro,
                timeout=options.timeout,
                symptoms=options.symptom_kinds,
                match=options.match_pattern,
                parallel=options.parallel_runs,
                scratch=scratch,
            ),
            logs,
        )
        self._runs_at: dict[str, int] = {}  # sha -> runs made there (numbers the run logs)

    def make_search(self, hunt: Hunt) -> Search:
        o, bug_is_new = self.options, hunt.bug_is_new
        if o.runs is not None:
            return ClassicBisection(hunt.graph, runs=o.runs, bug_is_new=bug_is_new, verify=o.verify)
        if o.model == "two-sided":
            return RateChangeBisection(
                hunt.graph, bug_is_new=bug_is_new, confidence=o.confidence,
                max_runs=o.max_runs, max_runs_per_revision=o.max_runs_per_revision,
            )  # fmt: skip
        kind = NoisyBisection if o.model == "one-sided" else AutoBisection
        return kind(
            hunt.graph, bug_is_new=bug_is_new, confidence=o.confidence, max_runs=o.max_runs,
            max_runs_per_revision=o.max_runs_per_revision, verify=o.verify,
        )  # fmt: skip

    def prepare(
        self, hunt: Hunt, build: Callable[[str], Path], commit: Callable[[str], Commit]
    ) -> list[Step]:
        return []

    def seen(self, step: Step) -> None:
        """A resumed hunt's saved visit: later run logs are numbered after its runs."""
        sha = step.commit.sha
        self._runs_at[sha] = self._runs_at.get(sha, 0) + step.runs

    def visit(self, commit: Commit, interpreter: Path, runs: int, activity: Activity) -> Judged:
        first = self._runs_at.get(commit.sha, 0)
        self._runs_at[commit.sha] = first + runs
        outcomes = self.probe.run(
            interpreter,
            commit.sha,
            runs=runs,
            first_index=first,
            on_run=lambda i, n: activity(f"run {i} of {n}"),
        )
        verdict, reason = runs_verdict(outcomes)
        return Judged(verdict=verdict, reason=reason, outcomes=outcomes)

    def counts(self, step: Step) -> tuple[int, int]:
        return step.symptoms, step.clean

    def conclude(
        self, steps: tuple[Step, ...], culprit: Commit | None, baseline: tuple[str, ...]
    ) -> Conclusion:
        return Conclusion()


class TimingJudge:
    """Times the repro with pyperf; the ends are measured first and must differ."""

    def __init__(self, options: HuntOptions, logs: Path) -> None:
        self.timing = TimingProbe(
            TimingConfig(
                repro=options.repro,
                timeout=options.timeout,
                threshold_percent=options.threshold_percent,
                affinity=options.affinity,
            ),
            logs,
        )

    def make_search(self, hunt: Hunt) -> Search:
        # A timing verdict is settled per revision; calibration verifies the ends.
        return ClassicBisection(hunt.graph, runs=1, bug_is_new=hunt.bug_is_new, verify=False)

    def prepare(
        self, hunt: Hunt, build: Callable[[str], Path], commit: Callable[[str], Commit]
    ) -> list[Step]:
        """Time both ends in two interleaved rounds; EndpointError unless they differ."""
        good, bad = build(hunt.good), build(hunt.bad)
        self.timing.calibrate(good, bad, good_sha=hunt.good, bad_sha=hunt.bad)
        assert self.timing.good is not None  # calibrate() sets both or raises
        assert self.timing.bad is not None
        return [
            Step(
                commit=commit(sha),
                verdict=verdict,
                reason=self.timing.calibration,
                timing=measured.summary(confidence=1.0),
            )
            for sha, measured, verdict in (
                (hunt.good, self.timing.good, Verdict.GOOD),
                (hunt.bad, self.timing.bad, Verdict.BAD),
            )
        ]

    def seen(self, step: Step) -> None:
        pass

    def visit(self, commit: Commit, interpreter: Path, runs: int, activity: Activity) -> Judged:
        activity("timing with pyperf")
        judged = self.timing.judge(interpreter, commit.sha)
        warning = f" (warning: {judged.warning})" if judged.warning else ""
        summary = judged.timing.summary(judged.confidence) if judged.timing is not None else None
        return Judged(verdict=judged.verdict, reason=judged.reason + warning, timing=summary)

    def counts(self, step: Step) -> tuple[int, int]:
        bad = step.verdict is Verdict.BAD  # a timing verdict counts like one decisive run
        return int(bad), int(not bad)

    def conclude(
        self, steps: tuple[Step, ...], culprit: Commit | None, baseline: tuple[str, ...]
    ) -> Conclusion:
        good, bad = self.timing.good, self.timing.bad
        if good is None or bad is None:
            raise EndpointError("the ends were not timed")
        table = compare_table([("--good -> --bad", good, bad)])
        warnings = tuple(self.timing.warnings)
        if culprit is None:
            return Conclusion(confidence=0.0, table=table, warnings=warnings)
        timed = {s.commit.sha: s.timing for s in steps if s.timing is not None}
        before = next(timed[sha] for sha in baseline if sha in timed)
        return Conclusion(
            confidence=hunt_confidence(t.confidence for t in timed.values()),
            slowdown=Slowdown.between(before, timed[culprit.sha]),
            table=table,
            warnings=warnings,
        )


def make_judge(options: HuntOptions, logs: Path, scratch: Path) -> RunJudge | TimingJudge:
    return TimingJudge(options, logs) if options.slow else RunJudge(options, logs, scratch)
