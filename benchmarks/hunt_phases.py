"""What the real-build hunt benchmarks share: a phase's figures and their table,
the CPython history, and the naive baseline.

Used by build_speed.py, hang_speed.py, build_ahead.py and cluster_cpython.py:
Phase (one measured hunt) and `table`, `say` (a timestamped progress line),
`make_history` (a history made with tools/cpython-history-from-debian) and
`git_bisect_steps` (how many revisions `git bisect run` tests in it), and
`naive` (`git bisect run` with a clean build at every step). finbisect's own
phase, `finbisect()`, is in build_speed.py, beside the regression it matches.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from inject_history import git

HERE = Path(__file__).resolve().parent
HISTORY_TOOL = HERE.parent / "tools" / "cpython-history-from-debian"

# The naive baseline, as a core developer would write it (crash -> 1, no build -> 125).
NAIVE_STEP = (
    "git clean -fdxq && ./configure --with-pydebug -q >/dev/null 2>&1 "
    "&& make -j{jobs} -s >/dev/null 2>&1 || exit 125; ./python {repro}; test $? -eq 0"
)


@dataclass(frozen=True, kw_only=True)
class Phase:
    name: str
    seconds: float
    culprit: str | None
    correct: bool
    builds: int | None  # compilations (naive: one per step)
    cached_builds: int | None
    steps: int
    measured: bool = True  # False: extrapolated from fewer steps
    note: str = ""
    hang_seconds: tuple[float, ...] = ()  # how long each run judged a hang took


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- the history --------------------------------------------------------------
def make_history(
    work: Path, given: Path | None, suite: str = "trixie", package: str = "python3.13"
) -> Path:
    """`given`, or a history made with the Debian tool under `work` (once)."""
    if given is not None:
        return given.resolve()
    dest = work / f"{package}-history"
    if not dest.exists():
        say(f"creating the history: {HISTORY_TOOL} {suite} {package} {dest}")
        subprocess.run([str(HISTORY_TOOL), suite, package, str(dest)], check=True)
    return dest


def git_bisect_steps(history: Path, work: Path, good: str, bad: str, injected: str) -> int:
    """How many revisions `git bisect run` tests here (an oracle instead of builds)."""
    clone = work / "oracle"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(history), str(clone)], check=True)
    git(clone, "bisect", "start", "--no-checkout", bad, good)
    test = f"! git merge-base --is-ancestor {injected} BISECT_HEAD"
    out = git(clone, "bisect", "run", "sh", "-c", test)
    found = git(clone, "rev-parse", "refs/bisect/bad")
    if found != injected:
        raise SystemExit(f"git bisect oracle named {found}, not {injected}:\n{out}")
    answers = ("git bisect good", "git bisect bad", "git bisect skip")
    return sum(line.startswith(answers) for line in git(clone, "bisect", "log").splitlines())


# -- naive ----------------------------------------------------------------------
def naive(
    history: Path, work: Path, *, good: str, bad: str, repro: Path, jobs: int, injected: str,
    steps_needed: int, max_steps: int | None, step_script: str = NAIVE_STEP,
) -> Phase:  # fmt: skip
    """`git bisect run` with `step_script` (formatted with jobs and repro) at every step."""
    clone = work / "naive"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(history), str(clone)], check=True)
    step = work / "naive-step.sh"
    times = work / "naive-times.txt"
    times.unlink(missing_ok=True)
    # Times go to a file outside the tree: `git clean -fdx` would delete it.
    script = step_script.format(jobs=jobs, repro=shlex.quote(str(repro)))
    step.write_text(
        "#!/bin/sh\n"
        f"start=$(date +%s.%N)\n( {script} )\nrc=$?\n"
        f'echo "$(git rev-parse HEAD) $rc $start $(date +%s.%N)" >> {shlex.quote(str(times))}\n'
        "exit $rc\n"
    )
    step.chmod(0o755)
    log = work / "naive.log"
    start = time.monotonic()
    git(clone, "bisect", "start", bad, good)
    if max_steps is None:
        say("naive: git bisect run with clean builds")
        with log.open("w") as out:
            subprocess.run(
                ["git", "bisect", "run", str(step)], cwd=clone, stdout=out, stderr=out, check=True
            )
        seconds = time.monotonic() - start
        culprit = git(clone, "rev-parse", "refs/bisect/bad")
        steps = len(times.read_text().splitlines())
        return Phase(
            name="naive git bisect run",
            seconds=seconds,
            culprit=culprit,
            correct=culprit == injected,
            builds=steps,
            cached_builds=0,
            steps=steps,
        )
    say(f"naive: measuring {max_steps} of the {steps_needed} steps git bisect needs")
    with log.open("w") as out:
        for _ in range(max_steps):
            rc = subprocess.run([str(step)], cwd=clone, stdout=out, stderr=out, check=False)
            answer = {0: "good", 125: "skip"}.get(rc.returncode, "bad")
            said = git(clone, "bisect", answer)
            out.write(said + "\n")
            if "is the first bad commit" in said:
                break
    measured = [line.split() for line in times.read_text().splitlines()]
    per_step = sum(float(end) - float(begin) for _, _, begin, end in measured) / len(measured)
    return Phase(
        name="naive git bisect run",
        seconds=per_step * steps_needed,
        culprit=None,
        correct=False,
        builds=steps_needed,
        cached_builds=0,
        steps=steps_needed,
        measured=False,
        note=f"extrapolated: {len(measured)} steps measured, {per_step:.0f} s each",
    )


# -- report ---------------------------------------------------------------------
def table(phases: list[Phase]) -> str:
    base = phases[0].seconds
    rows = [("phase", "wall s", "vs naive", "builds", "reused", "steps", "culprit")]
    for p in phases:
        rows.append(
            (
                p.name + ("" if p.measured else " (extrapolated)"),
                f"{p.seconds:.1f}",
                "1.0x" if p is phases[0] else f"{base / p.seconds:.1f}x",
                "-" if p.builds is None else str(p.builds),
                "-" if p.cached_builds is None else str(p.cached_builds),
                str(p.steps),
                "correct" if p.correct else ("not run" if not p.measured else "WRONG"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
