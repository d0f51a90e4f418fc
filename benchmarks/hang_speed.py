"""A real hang hunt: naive `git bisect run` with `timeout 60` against finbisect.

    .venv/bin/python benchmarks/hang_speed.py [--history DIR] [--position K]
        [--naive-steps K] [--workdir DIR] [--json PATH] [--finbisect-arg ARG]

Creates a real CPython history with
`tools/cpython-history-from-debian bullseye python3.9 DIR` (3.9.2 and its
Debian patches; or reuses one given by `--history`: 3.9 or 3.13, e.g.
`forky python3.13 DIR 3.13.15-1`), clones it and inserts
one commit after index K (default 18) that makes `Py_FinalizeEx()` wait, with
the GIL held and without a timeout, for the daemon threads to end before it
tears the interpreter down. The repro's daemon thread waits on a lock the main
thread holds, so from that commit on both threads are blocked on each other
at exit: a real deadlock (two untimed futex waits), not a busy loop.
good = the release tarball, bad = the tip.

Measured in one run, one build at a time, `-j` jobs, in this order:
1. naive: `git bisect run` with `git clean -fdx && ./configure --with-pydebug
   && make -jN python` and `timeout 60 ./python repro.py` at every step (what a
   core developer would write; `--naive-steps K` measures K steps and
   extrapolates, labelled as such);
2. finbisect cold: `finbisect run repro.py --repo ... --good ... --bad ...`
   at its defaults (pydebug, ccache, 60 s timeout, deadlock detection, the
   noisy search, stacks at the answer) with an empty --cache-dir and compiler
   cache;
3. finbisect warm: the same hunt again.
Targets (issue #9): cold >= 3x faster than naive, warm >= 30x, the median
time to classify a hung run <= 3 s at the default 60 s timeout, the right
culprit every time.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from build_speed import finbisect
from hunt_phases import Phase, git_bisect_steps, make_history, naive, say, table
from inject_history import inject_commit, replace_once
from results import write_results

TARGET = "Python/pylifecycle.c"
# Where Py_FinalizeEx() has run the atexit functions, per version: (anchor, the
# test for "a thread other than this one still has a thread state").
_ANCHORS = (
    (  # 3.9
        "    call_py_exitfuncs(tstate);\n\n    /* Copy the core config",
        "tstate->interp->tstate_head != tstate || tstate->next != NULL",
    ),
    (  # 3.13
        "    _PyAtExit_Call(tstate->interp);\n\n    assert(_PyThreadState_GET() == tstate);",
        "tstate->interp->threads.head != tstate || tstate->next != NULL",
    ),
)
_DEADLOCK = """
    /* hang_speed.py: wait for the daemon threads to end before tearing
       down. Nothing ever releases `ended` (the regression to hunt), and
       the GIL stays held, so a daemon thread can never end: a deadlock. */
    if ({others_alive}) {{
        PyThread_type_lock ended = PyThread_allocate_lock();
        PyThread_acquire_lock(ended, WAIT_LOCK);
        PyThread_acquire_lock(ended, WAIT_LOCK);
    }}
"""
REPRO = """\
import threading

held = threading.Lock()
held.acquire()  # the main thread keeps it until exit


def waiter():
    held.acquire()  # blocks, without a timeout, until the process ends


threading.Thread(target=waiter, daemon=True).start()
"""
# The naive baseline (hang -> timeout's 124 -> bad, no build -> 125 -> skip).
NAIVE_STEP = (
    "git clean -fdxq && ./configure --with-pydebug -q >/dev/null 2>&1 "
    "&& make -j{jobs} -s python >/dev/null 2>&1 || exit 125; timeout 60 ./python {repro}"
)
TARGETS = {"cold": 3.0, "warm": 30.0, "classify_s": 3.0}


# A flaky variant (`percent` < 100): the deadlock only when the monotonic clock's
# microseconds fall below `percent` (mod 100), a coin tossed anew by each run.
_COIN = "({others_alive}) && _finbisect_coin()"
_COIN_FUNCTION = """
static int
_finbisect_coin(void)
{{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_nsec / 1000) % 100 < {percent};
}}

"""


def _inject_deadlock(tree: Path, percent: int = 100) -> None:
    text = (tree / TARGET).read_text()
    for anchor, alive in _ANCHORS:
        if anchor in text:
            call, rest = anchor.split("\n", 1)
            others_alive = alive if percent >= 100 else _COIN.format(others_alive=alive)
            if percent < 100:
                first = "\nint\nPy_FinalizeEx(void)\n"
                replace_once(tree / TARGET, first, _COIN_FUNCTION.format(percent=percent) + first)
            block = _DEADLOCK.format(others_alive=others_alive)
            replace_once(tree / TARGET, anchor, f"{call}\n{block}{rest}")
            return
    raise SystemExit(f"{TARGET}: no known place to inject the deadlock (3.9 and 3.13 known)")


def add_hunt_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the hunt this benchmark and build_ahead.py time."""
    parser.add_argument("--history", type=Path, help="reuse this CPython 3.9/3.13 history")
    parser.add_argument("--position", type=int, default=18, help="inject after this commit")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, help="keep clones, caches and logs here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--finbisect-arg", action="append", default=[],
                        help="extra `finbisect run` argument (repeatable)")  # fmt: skip


def deadlock_hunt(
    work: Path, given: Path | None, position: int, percent: int = 100
) -> tuple[Path, Path, list[str], str, Path]:
    """(source history, history with the deadlock injected, its shas, the injected sha, repro)
    under `work`; the source is `given` or made from Debian's 3.9 package. With `percent`
    below 100, the deadlock happens in about that share of runs."""
    work.mkdir(parents=True, exist_ok=True)
    source = make_history(work, given, "bullseye", "python3.9")
    history = work / "history"
    shas, injected = inject_commit(
        source, history, position, change=functools.partial(_inject_deadlock, percent=percent),
        touched=[TARGET],
        message="Finalize: wait for daemon threads to end before tearing down",
    )  # fmt: skip
    repro = work / "repro.py"
    repro.write_text(REPRO)
    return source, history, shas, injected, repro


def verdict(phases: list[Phase]) -> dict[str, object]:
    naive_phase, cold, warm = phases
    hangs = [s for p in (cold, warm) for s in p.hang_seconds]
    median = statistics.median(hangs) if hangs else None
    figures: dict[str, object] = {
        "cold_speedup": round(naive_phase.seconds / cold.seconds, 2),
        "warm_speedup": round(naive_phase.seconds / warm.seconds, 2),
        "hung_runs": len(hangs),
        "median_classify_s": None if median is None else round(median, 2),
        "all_correct": all(p.correct for p in phases if p.measured),
    }
    figures["targets_met"] = (
        figures["cold_speedup"] >= TARGETS["cold"]  # type: ignore[operator]
        and figures["warm_speedup"] >= TARGETS["warm"]  # type: ignore[operator]
        and median is not None
        and median <= TARGETS["classify_s"]
        and figures["all_correct"]
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-steps", type=int, help="measure only K naive steps, extrapolate")
    add_hunt_arguments(parser)
    args = parser.parse_args()

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="hspeed-"))
    source, history, shas, injected, repro = deadlock_hunt(work, args.history, args.position)
    good, bad = shas[0], shas[-1]
    steps_needed = git_bisect_steps(history, work, good, bad, injected)
    say(
        f"history {source}: {len(shas)} commits, the deadlock injected at index "
        f"{args.position + 1} ({injected[:12]}); git bisect needs {steps_needed} steps; "
        f"-j{args.jobs}"
    )
    common = {"good": good, "bad": bad, "repro": repro, "jobs": args.jobs}
    phases = [
        naive(history, work, **common, injected=injected, steps_needed=steps_needed,
              max_steps=args.naive_steps, step_script=NAIVE_STEP)
    ]  # fmt: skip
    print(table(phases), flush=True)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    # finbisect's compiler cache lives in its cache dir: emptied with it.
    for name in ("finbisect cold", "finbisect warm"):
        phases.append(
            finbisect(name, history, work, **common, cache_dir=cache, injected=injected,
                      extra=args.finbisect_arg, match=None)
        )  # fmt: skip
        print(table(phases), flush=True)

    figures = verdict(phases)
    print()
    print(table(phases))
    print(
        f"\ntargets: cold >= {TARGETS['cold']:.0f}x naive: {figures['cold_speedup']}x; "
        f"warm >= {TARGETS['warm']:.0f}x: {figures['warm_speedup']}x; median time to classify "
        f"a hung run <= {TARGETS['classify_s']:.0f} s: {figures['median_classify_s']} s "
        f"({figures['hung_runs']} hung runs); right culprit every time: {figures['all_correct']}"
    )
    if phases[0].note:
        print(f"naive: {phases[0].note}")
    if args.json is not None:
        write_results(args.json, {
            "jobs": args.jobs, "history": str(source), "commits": len(shas),
            "position": args.position, "injected": injected, "good": good, "bad": bad,
            "git_bisect_steps": steps_needed, "figures": figures,
            "phases": [asdict(p) for p in phases],
        })  # fmt: skip
    return 0 if figures["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
