"""Building ahead (issue #9, item 6): cold hunts with it, without it, and with every guess wrong.

    .venv/bin/python benchmarks/build_ahead.py [--history DIR] [--position K]
        [--repeat N] [--workdir DIR] [--json PATH] [--finbisect-arg ARG]

The history and the regression are hang_speed.py's: a real CPython history
(3.9 or 3.13, from `tools/cpython-history-from-debian`, or made here) with an
injected finalization deadlock. Each variant runs the same cold hunt (an empty
--cache-dir, so an empty compiler cache too) at finbisect's defaults:

- off: `--no-build-ahead`, the baseline;
- likely: the default, building the search's likely next revisions while runs go;
- wrong: every background build is of a revision the search does not ask for next
  (`FINBISECT_BUILD_AHEAD_GUESS=wrong`), so each is stopped when the loop moves on:
  what a miss costs.

Variants are interleaved (off, likely, wrong, off, ...) so that a slow spell of
this shared machine does not fall on one of them; each figure is the median of
`--repeat` hunts, and the ratios are against `off` measured in the same run.
Target: wrong / off <= 1.05 (a miss never lengthens a hunt by more than a few
percent); likely / off < 1 is the gain.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from build_speed import finbisect
from hang_speed import add_hunt_arguments, deadlock_hunt
from hunt_phases import Phase, say
from results import write_results

VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "off": (["--no-build-ahead"], {}),
    "likely": ([], {}),
    "wrong": ([], {"FINBISECT_BUILD_AHEAD_GUESS": "wrong"}),
}
TARGET_WRONG = 1.05
_AHEAD_LINE = re.compile(
    r"built ahead while runs went: (\d+) revision\(s\), (\d+) then asked for, (\d+) stopped"
)


def _ahead_counts(log: Path) -> tuple[int, int, int]:
    """(started, used, stopped) from the hunt's progress, (0, 0, 0) without the line."""
    found = _AHEAD_LINE.search(log.read_text(errors="replace"))
    if found is None:
        return (0, 0, 0)
    started, used, stopped = found.groups()
    return (int(started), int(used), int(stopped))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="hunts per variant")
    add_hunt_arguments(parser)
    args = parser.parse_args()

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="ahead-"))
    source, history, shas, injected, repro = deadlock_hunt(work, args.history, args.position)
    say(f"history {source}: {len(shas)} commits, deadlock at {args.position + 1}; -j{args.jobs}")

    phases: dict[str, list[Phase]] = {name: [] for name in VARIANTS}
    counts: dict[str, list[tuple[int, int, int]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.repeat):
        for name, (extra, env) in VARIANTS.items():
            cache = work / "cache"
            shutil.rmtree(cache, ignore_errors=True)  # cold: builds and ccache
            label = f"{name} {round_ + 1}"
            phase = finbisect(
                label, history, work, good=shas[0], bad=shas[-1], repro=repro,
                jobs=args.jobs, cache_dir=cache, injected=injected,
                extra=[*extra, *args.finbisect_arg], env=env, match=None,
            )  # fmt: skip
            phases[name].append(phase)
            slug = re.sub(r"[^\w.]+", "-", label).strip("-")
            counts[name].append(_ahead_counts(work / f"{slug}.log"))
            say(f"{label}: {phase.seconds:.1f} s, culprit right: {phase.correct}, "
                f"built ahead (started, used, stopped): {counts[name][-1]}")  # fmt: skip

    median = {name: statistics.median(p.seconds for p in runs) for name, runs in phases.items()}
    ratios = {name: round(median[name] / median["off"], 3) for name in VARIANTS}
    print()
    print("variant  median s  vs off  hunts (s)                 built ahead (started/used/stopped)")
    for name in VARIANTS:
        each = ", ".join(f"{p.seconds:.1f}" for p in phases[name])
        ahead = ", ".join("/".join(map(str, c)) for c in counts[name])
        print(f"{name:<8} {median[name]:>8.1f}  {ratios[name]:>5.3f}x  {each:<25} {ahead}")
    correct = all(p.correct for runs in phases.values() for p in runs)
    met = ratios["wrong"] <= TARGET_WRONG and correct
    print(
        f"\ntarget: wrong / off <= {TARGET_WRONG}: {ratios['wrong']}; likely / off: "
        f"{ratios['likely']}; right culprit every time: {correct}"
    )
    if args.json is not None:
        write_results(args.json, {
            "jobs": args.jobs, "history": str(source), "commits": len(shas),
            "position": args.position, "injected": injected, "repeat": args.repeat,
            "median_seconds": median, "ratios": ratios, "target_met": met,
            "built_ahead": counts,
            "phases": {name: [asdict(p) for p in runs] for name, runs in phases.items()},
        })  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
