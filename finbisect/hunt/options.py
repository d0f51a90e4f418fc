"""What a hunt is asked to do, and the two things derived from it alone.

`HuntOptions` is everything `finbisect run` (or the demo) decides; the hunt
key says which saved hunt the same options would resume; the reproduce
command is the one line that runs the same hunt again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from finbisect.build.builder import BuildConfig
from finbisect.models import OutcomeKind

__all__ = ["HuntOptions", "hunt_key", "reproduce_command"]


@dataclass(frozen=True, kw_only=True)
class HuntOptions:
    repro: Path
    repo: Path
    good: str
    bad: str
    build: BuildConfig
    symptoms: frozenset[OutcomeKind]
    match: re.Pattern[str] | None
    timeout: float
    runs: int | None  # fixed runs per revision (classic search); None: the noisy search
    confidence: float = 0.95
    max_runs: int = 2000
    max_runs_per_revision: int = 200
    parallel_runs: int = 1
    first_parent: bool = False
    verify: bool = True
    cache_dir: Path
    cache_size: int = 20 * 1024**3  # bytes of cached builds kept
    slow: bool = False  # a timing hunt (--symptom slow): pyperf decides, not crashes
    threshold_percent: float | None = None  # timing hunts: the slowdown that counts
    affinity: str | None = None  # timing hunts: CPUs for pyperf --affinity


def hunt_key(options: HuntOptions, git_dir: Path, good: str, bad: str) -> str:
    """Everything that decides a hunt's answer: equal keys resume, different ones start afresh."""
    what = {
        "repo": str(git_dir),
        "ends": [good, bad],
        "repro": str(options.repro.resolve()),
        "repro_text": hashlib.sha256(options.repro.read_bytes()).hexdigest(),
        "build": options.build.fingerprint(),
        "symptoms": sorted(k.value for k in options.symptoms),
        "match": options.match.pattern if options.match is not None else None,
        "timeout": options.timeout,
        "search": [options.runs, options.confidence, options.max_runs],
        "per_revision": options.max_runs_per_revision,
        "first_parent": options.first_parent,
        "verify": options.verify,
        "timing": [options.slow, options.threshold_percent],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def reproduce_command(options: HuntOptions, good: str, bad: str) -> str:
    """The `finbisect run` line that repeats this hunt, with the ends pinned to shas."""
    argv = ["finbisect", "run", str(options.repro.resolve()), "--repo", str(options.repo.resolve())]
    argv += ["--good", good, "--bad", bad]
    if options.build.command is not None:
        argv += ["--build-cmd", options.build.command]
    if options.build.interpreter != "python":
        argv += ["--interpreter", options.build.interpreter]
    if options.slow:
        argv += ["--symptom", "slow"]
        if options.threshold_percent is not None:
            argv += ["--threshold", f"{options.threshold_percent:g}"]
        if options.affinity is not None:
            argv += ["--affinity", options.affinity]
    else:
        argv += ["--symptom", ",".join(sorted(kind.value for kind in options.symptoms))]
    if options.match is not None:
        argv += ["--match", options.match.pattern]
    argv += ["--timeout", f"{options.timeout:g}"]
    if options.runs is not None:
        argv += ["--runs", str(options.runs)]
    elif not options.slow:
        argv += ["--confidence", f"{options.confidence:g}", "--max-runs", str(options.max_runs)]
    if options.parallel_runs != 1:
        argv += ["--parallel-runs", str(options.parallel_runs)]
    if options.first_parent:
        argv.append("--first-parent")
    if not options.verify:
        argv.append("--no-verify")
    return shlex.join(argv)
