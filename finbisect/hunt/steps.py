"""Turning runs and builds into Steps: a visit's verdict, and one step per revision."""

from __future__ import annotations

from typing import Protocol

from finbisect.models import Outcome, OutcomeKind, RunClass, Step, Verdict

__all__ = ["build_reason", "merge_visits", "runs_verdict"]


def merge_visits(visits: list[Step]) -> tuple[Step, ...]:
    """One step per revision, in first-visit order, with the totals of all its visits."""
    by_sha: dict[str, list[Step]] = {}
    for visit in visits:
        by_sha.setdefault(visit.commit.sha, []).append(visit)
    steps = []
    for group in by_sha.values():
        outcomes = tuple(o for v in group for o in v.outcomes)
        verdict, reason = (
            runs_verdict(outcomes) if outcomes else (group[0].verdict, group[0].reason)
        )
        steps.append(
            Step(
                commit=group[0].commit,
                verdict=verdict,
                reason=reason,
                outcomes=outcomes,
                build_seconds=sum(v.build_seconds for v in group),
                run_seconds=sum(v.run_seconds for v in group),
                cached=group[0].cached,
                build_log=group[0].build_log,
                timing=group[-1].timing,
                built_by=next((v.built_by for v in group if v.built_by), ""),
            )
        )
    return tuple(steps)


def runs_verdict(outcomes: tuple[Outcome, ...]) -> tuple[Verdict, str]:
    """Any symptom makes the revision bad; else any clean run makes it good; else skip."""
    total = len(outcomes)
    symptoms = [o for o in outcomes if o.run_class is RunClass.SYMPTOM]
    if symptoms:
        first = symptoms[0]
        what = {OutcomeKind.CRASH: "crashed", OutcomeKind.HANG: "hung"}.get(first.kind, "failed")
        return Verdict.BAD, f"{len(symptoms)} of {total} runs {what}: {first.signature}"
    if any(o.run_class is RunClass.CLEAN for o in outcomes):
        unrelated = [o for o in outcomes if o.run_class is RunClass.UNRELATED]
        extra = f" ({len(unrelated)} unrelated: {unrelated[0].signature})" if unrelated else ""
        return Verdict.GOOD, f"{total - len(unrelated)} of {total} runs ok{extra}"
    first = outcomes[0]
    return Verdict.SKIP, f"only unrelated failures: {first.kind.value}: {first.signature}"


class _Failed(Protocol):
    """A failed build, here (BuildResult) or on a cluster's worker (cluster.jobs.Built)."""

    @property
    def reason(self) -> str: ...
    @property
    def error_lines(self) -> tuple[str, ...]: ...


def build_reason(built: _Failed) -> str:
    first_error = f" — {built.error_lines[0]}" if built.error_lines else ""
    return f"build failed: {built.reason}{first_error}"
