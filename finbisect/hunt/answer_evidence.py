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
from finbisect.runs.evidence import Evidence, capture_evidence, culprit_frames
from finbisect.runs.probe import probe_env

__all__ = ["EVIDENCE_RUNS", "NO_GDB_ADVICE", "EvidenceSource", "with_evidence"]

EVIDENCE_RUNS = 3  # a flaky symptom gets a few chances; the hunt is already answered
Builds = Callable[[str], Path | None]  # sha -> its interpreter, None if it does not build
Seen = Callable[[str], Evidence | None]  # sha -> a hang the hunt already caught there
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
    seen: Seen | None = None,
) -> Result:
    """`result` with the evidence at its first bad revision, or a note saying why there is none.

    A hang the hunt's own runs caught there, stacks included (`seen`), is the evidence
    as it is: no rerun, which could wait the whole --timeout for a hang that is no deadlock.
    """
    if result.culprit is None:
        return result
    bad_sha = result.culprit.sha if result.hunt is HuntKind.REGRESSION else parents[0]
    kind = _kind(result, bad_sha, source.symptoms)
    if kind is None:
        return result  # an error or a slowdown: no stacks to show
    if stacks.gdb_path() is None:
        return replace(result, evidence_note=NO_GDB_ADVICE)
    caught = seen(bad_sha) if seen is not None and kind is OutcomeKind.HANG else None
    got = caught if caught is not None else _observe(bad_sha, kind, source, build)
    if isinstance(got, str):
        return replace(result, evidence_note=got)
    hits = tuple(hit.describe() for hit in culprit_frames(diff, got))
    return replace(result, evidence=got.to_json(), evidence_hits=hits)


def _observe(sha: str, kind: OutcomeKind, source: EvidenceSource, build: Builds) -> Evidence | str:
    """The symptom caught under gdb in a few runs at `sha`, or why not (a note)."""
    interpreter = build(sha)
    if interpreter is None:
        return f"no evidence: {sha[:12]} did not build again"
    env = probe_env(os.environ)
    for _ in range(EVIDENCE_RUNS):
        evidence = capture_evidence(
            sha=sha, kind=kind, interpreter=interpreter, repro=source.repro,
            timeout=source.timeout, logs=source.logs, env=env,
        )  # fmt: skip
        if evidence is not None:
            return evidence
    return (
        f"no evidence: the {kind.value} did not show in {EVIDENCE_RUNS} observed runs at {sha[:12]}"
    )
