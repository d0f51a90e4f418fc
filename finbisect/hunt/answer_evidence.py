"""Evidence at the answer: the symptom caught under gdb at the first bad revision.

Once the culprit is known, the revision that has the bug (a regression's culprit,
a fix's first parent) is run again, observed, until the symptom shows or a few runs
are spent; the culprit's diff is then searched for the functions on those stacks.
Never fatal: without gdb, or when the symptom does not show, the answer stands alone.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from finbisect.models import HuntKind, OutcomeKind, Result, RunClass
from finbisect.runs import stacks
from finbisect.runs.evidence import capture_evidence, culprit_frames
from finbisect.runs.probe import probe_env

__all__ = ["EVIDENCE_RUNS", "NO_GDB_ADVICE", "EvidenceSource", "with_evidence"]

EVIDENCE_RUNS = 3  # a flaky symptom gets a few chances; the hunt is already answered
Builds = Callable[[str], Path | None]  # sha -> its interpreter, None if it does not build
NO_GDB_ADVICE = "no evidence: gdb not found (apt install gdb) to see the stacks at the culprit"


@dataclass(frozen=True, kw_only=True)
class EvidenceSource:
    """What capturing needs from the hunt: how to build a revision and read the culprit."""

    repro: Path
    timeout: float
    symptoms: frozenset[OutcomeKind]
    logs: Path


def _kind(result: Result, sha: str, wanted: frozenset[OutcomeKind]) -> OutcomeKind | None:
    """The symptom kind to catch: the one the bad revision showed most, else the hunted one."""
    shown = Counter(
        o.kind
        for step in result.steps
        if step.commit.sha == sha
        for o in step.outcomes
        if o.run_class is RunClass.SYMPTOM and o.kind in (OutcomeKind.CRASH, OutcomeKind.HANG)
    )
    if shown:
        return shown.most_common(1)[0][0]
    for kind in (OutcomeKind.HANG, OutcomeKind.CRASH):
        if kind in wanted:
            return kind
    return None


def with_evidence(
    result: Result,
    source: EvidenceSource,
    *,
    parents: list[str],
    build: Builds,
    diff: str,
) -> Result:
    """`result` with the evidence at its first bad revision, or a note saying why there is none."""
    if result.culprit is None:
        return result
    bad_sha = result.culprit.sha if result.hunt is HuntKind.REGRESSION else parents[0]
    kind = _kind(result, bad_sha, source.symptoms)
    if kind is None:
        return result  # an error or a slowdown: no stacks to show
    if stacks.gdb_path() is None:
        return replace(result, evidence_note=NO_GDB_ADVICE)
    interpreter = build(bad_sha)
    if interpreter is None:
        return replace(result, evidence_note=f"no evidence: {bad_sha[:12]} did not build again")
    env = probe_env(os.environ)
    for _ in range(EVIDENCE_RUNS):
        evidence = capture_evidence(
            sha=bad_sha,
            kind=kind,
            interpreter=interpreter,
            repro=source.repro,
            timeout=source.timeout,
            logs=source.logs,
            env=env,
        )
        if evidence is not None:
            hits = tuple(hit.describe() for hit in culprit_frames(diff, evidence))
            return replace(result, evidence=evidence.to_json(), evidence_hits=hits)
    return replace(
        result,
        evidence_note=f"no evidence: the {kind.value} did not show in {EVIDENCE_RUNS} "
        f"observed runs at {bad_sha[:12]}",
    )
