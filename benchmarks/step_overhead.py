"""finbisect's own cost per step on a CPython-sized tree with a 100,000-commit history.

    .venv/bin/python benchmarks/step_overhead.py [--commits 100000] [--workdir DIR]
        [--source /work/hist/py39] [--json FILE] [--skip-noisy] [--before DIR]
    .venv/bin/python benchmarks/step_overhead.py --search-only [--before DIR]

The tree is the HEAD of --source (`git archive`: about 4,300 files, 100 MB for
CPython 3.9), committed once, then --commits commits that each rewrite one small
file, all made with `git fast-import` (a --workdir keeps it for the next run).
The commit at the middle adds `Misc/FB_CRASH`. The build is trivial: a `python`
that is a shell script exec'ing this Python, with FB_CRASH=1 in its environment
when the marker exists; the repro aborts (SIGABRT: a crash) when it sees it.

Measured in the same run, on the same history:

- git bisect run (the baseline): `git bisect run` on a plain clone, each step
  checking out, building and running the repro, as finbisect does;
- finbisect `--runs 1` (git bisect's search), finbisect at its defaults (the
  noisy search, `--runs auto`), and `--runs 1 --no-build-ahead`, each from an
  empty cache; with --before DIR, the first two also by the finbisect in DIR (a
  checkout of an older commit, run with PYTHONPATH=DIR), alternated with this one.

Per step is the median time between the starts of consecutive visits (finbisect
writes one progress line per visit; git bisect one "Bisecting:" line per step);
the clone and setup (to the first visit) and the report (after the last) are
counted apart. finbisect's own overhead per step is its per step less git
bisect's: what it spends beyond checkout, build and run (storing the build, the
search, the saved state, building ahead). "build", "runs" and "loop" split a
visit from the --json result: the builds' seconds (cache lookup, tree, checkout,
build command, store), the runs', and what is left of the loop's time (search,
state, progress, waiting for a build ahead). Under a build ahead that was used,
"build" counts its seconds too, so "loop" is exact only without building ahead.
The target (issue #12): <= 0.3 s of overhead per step.

--search-only times the searches alone (no git, no builds) on a line of
--commits candidates, five of them unbuildable: seconds per step of choosing
and recording, for git bisect's search, the one-sided noisy search and auto.
The history is written by long_history.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from long_history import MARKER, make_history

REPRO = "import os\nif os.environ.get('FB_CRASH'):\n    os.abort()\n"
TARGET_SECONDS = 0.3


def build_command(python: str) -> str:
    """The trivial build: ./python is this Python, told to crash when the marker exists."""
    q = shlex.quote(python)
    return (
        "{ echo '#!/bin/sh'; "
        f"if [ -e {MARKER} ]; then echo 'FB_CRASH=1; export FB_CRASH'; fi; "
        f'echo "exec {q} \\"\\$@\\""; }} > python && chmod +x python'
    )


def _timed_lines(
    argv: list[str], cwd: Path, patterns: list[str], env: dict[str, str] | None = None
) -> tuple[int, float, list[list[float]], str]:
    """Run argv; (exit code, wall seconds, when lines matching each pattern came, output)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    regexes = [re.compile(pattern) for pattern in patterns]
    marks: list[list[float]] = [[] for _ in patterns]
    lines = []
    for line in proc.stdout:
        lines.append(line)
        for regex, found in zip(regexes, marks, strict=True):
            if regex.search(line):
                found.append(time.monotonic() - start)
    code = proc.wait()
    return code, time.monotonic() - start, marks, "".join(lines)


def _per_step(marks: list[float], wall: float) -> dict[str, Any]:
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    return {
        "steps": len(marks),
        "wall": round(wall, 3),
        "setup": round(marks[0], 3) if marks else wall,
        "end": round(wall - marks[-1], 3) if marks else 0.0,
        "per_step_median": round(statistics.median(gaps), 4) if gaps else 0.0,
        "per_step_mean": round(statistics.fmean(gaps), 4) if gaps else 0.0,
    }


def git_bisect(work: Path, repo: Path, good: str, bad: str, build: str) -> dict[str, Any]:
    clone = work / "plain"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    subprocess.run(["git", "bisect", "start", bad, good], cwd=clone, check=True,
                   capture_output=True)  # fmt: skip
    check = f"{build} && ./python {shlex.quote(str(work / 'repro.py'))} && exit 0; exit 1"
    code, wall, (marks,), output = _timed_lines(
        ["git", "bisect", "run", "sh", "-c", check], clone, [r"^Bisecting:|is the first bad commit"]
    )
    culprit = re.search(r"^([0-9a-f]{40}) is the first bad commit", output, re.M)
    figures = _per_step(marks, wall)
    figures["culprit"] = culprit.group(1) if culprit else None
    figures["exit"] = code
    return figures


@dataclass(frozen=True, kw_only=True)
class Hunt:
    """One finbisect hunt of the history: its name, extra options, and which code runs it."""

    name: str
    extra: tuple[str, ...]
    code: Path | None = None  # a checkout of another finbisect (PYTHONPATH), else this one


def finbisect(
    work: Path, repo: Path, ends: tuple[str, str], build: str, hunt: Hunt
) -> dict[str, Any]:
    good, bad = ends
    name = hunt.name
    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    out = work / f"{name}.json"
    argv = [
        "/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, "-m", "finbisect", "run",
        str(work / "repro.py"),
        "--repo", str(repo), "--good", good, "--bad", bad, "--build-cmd", build,
        "--symptom", "crash", "--no-evidence", "--cache-dir", str(cache), "--json", str(out),
        *hunt.extra,
    ]  # fmt: skip
    env = {"PYTHONPATH": str(hunt.code)} if hunt.code else {}
    code, wall, (marks, verdicts), output = _timed_lines(
        argv, work, [r"step \d+ .*: checkout and build$", r"step \d+ .*: (good|bad|skip) — "], env
    )
    data = json.loads(out.read_text()) if out.is_file() else {}
    figures = _per_step(marks, wall)
    # The loop's own time: from the first visit to the last one's verdict line, less each
    # visit's build (cache lookup, tree, checkout, command, store) and runs.
    steps = data.get("steps", [])
    if marks and verdicts and steps:
        inside = sum(step["build_seconds"] + step["run_seconds"] for step in steps)
        visits = len(marks)
        figures["bookkeeping_per_visit"] = round((verdicts[-1] - marks[0] - inside) / visits, 4)
        figures["build_per_visit"] = round(sum(x["build_seconds"] for x in steps) / visits, 4)
        figures["run_per_visit"] = round(sum(x["run_seconds"] for x in steps) / visits, 4)
    rss = re.search(r"maxrss_kb=(\d+)", output)
    figures["maxrss_mb"] = round(int(rss.group(1)) / 1024, 1) if rss else None
    figures["exit"] = code
    figures["culprit"] = (data.get("culprit") or {}).get("sha")
    figures["revisions"] = len(data.get("steps", []))
    figures["runs"] = data.get("runs")
    figures["output_tail"] = output[-600:]
    return figures


# The searches alone on a line of --commits candidates (no git, no builds), five of them
# unbuildable (skips make the noisy searches look for candidates no revision can tell
# apart): seconds per step of choosing and recording, as a JSON line.
_SEARCH_ONLY = """
import json, random, sys, time
from finbisect.search.strategy import CandidateGraph, ClassicBisection, OLD_END
from finbisect.search.noisy import NoisyBisection
from finbisect.search.model_choice import AutoBisection
n = int(sys.argv[1])
start = time.perf_counter()
graph = CandidateGraph.linear(n)
out = {"graph": time.perf_counter() - start}
culprit = n * 53 // 100
skips = set(range(culprit - 3, culprit)) | {n // 2, n // 4 + 1}
def drive(search, p):
    rng, times = random.Random(1), []
    while True:
        start = time.perf_counter()
        request = search.next_request()
        if request is None:
            break
        if request.index in skips:
            search.record_skip(request.index)
        else:
            new = request.index != OLD_END and graph.is_new(request.index, culprit)
            hits = sum(rng.random() < p for _ in range(request.runs)) if new else 0
            search.record(request.index, symptoms=hits, clean=request.runs - hits)
        search.remaining(), search.steps_left()
        times.append(time.perf_counter() - start)
    return {"steps": len(times), "mean": sum(times) / len(times), "max": max(times),
            "status": search.answer().status.value}
out["classic"] = drive(ClassicBisection(graph, runs=1, bug_is_new=True), 1.0)
out["noisy p=0.5"] = drive(NoisyBisection(graph, bug_is_new=True), 0.5)
out["auto p=0.5"] = drive(AutoBisection(graph, bug_is_new=True), 0.5)
print(json.dumps(out))
"""


def search_only(commits: int, before: Path | None) -> dict[str, Any]:
    """Each search's seconds per step at `commits` candidates, by this code and `before`."""
    out: dict[str, Any] = {}
    for name, code in [("before", before), ("now", None)]:
        if name == "before" and code is None:
            continue
        env = {**os.environ, **({"PYTHONPATH": str(code)} if code else {})}
        argv = ["/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, "-c", _SEARCH_ONLY]
        done = subprocess.run(  # cwd: not this checkout, which `-c` would put first on sys.path
            [*argv, str(commits)], cwd="/", env=env, capture_output=True, text=True, check=True
        )
        out[name] = json.loads(done.stdout)
        rss = re.search(r"maxrss_kb=(\d+)", done.stderr)
        out[name]["maxrss_mb"] = round(int(rss.group(1)) / 1024, 1) if rss else None
    print(f"searches alone, {commits} candidates (5 unbuildable): seconds per step")
    for search in ("classic", "noisy p=0.5", "auto p=0.5"):
        now = out["now"][search]
        line = (
            f"  {search:<12} {now['steps']:>3} steps: mean {now['mean']:.4f}, max {now['max']:.4f}"
        )
        if "before" in out:
            old = out["before"][search]
            line += (
                f"; before mean {old['mean']:.4f}, max {old['max']:.4f}: "
                f"now {_ratio(now['mean'], old['mean'])}x the mean"
            )
        print(line)
    for name, figures in out.items():
        print(f"  {name}: graph made in {figures['graph']:.3f} s, maxrss {figures['maxrss_mb']} MB")
    return out


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def _print_table(results: dict[str, Any], names: list[str], culprit: str) -> None:
    base = results["git bisect run"]["per_step_median"]
    print(
        f"{'':<24} {'steps':>5} {'setup s':>7} {'per step s':>10} {'vs git':>7} "
        f"{'overhead s':>10} {'build s':>7} {'runs s':>6} {'loop s':>6} {'end s':>6} "
        f"{'maxrss MB':>9}  culprit"
    )
    for name in ["git bisect run", *names]:
        r = results[name]
        step = r["per_step_median"]
        r["vs_git"] = _ratio(step, base)
        r["overhead_per_step"] = round(step - base, 4)
        right = "right" if r["culprit"] == culprit else f"WRONG ({r['culprit']})"
        cells = [r.get(k) for k in ("build_per_visit", "run_per_visit", "bookkeeping_per_visit")]
        build, runs, loop = (f"{c:.3f}" if c is not None else "" for c in cells)
        print(
            f"{name:<24} {r['steps']:>5} {r['setup']:>7.2f} {step:>10.3f} {r['vs_git']:>6.2f}x "
            f"{r['overhead_per_step']:>10.3f} {build:>7} {runs:>6} {loop:>6} {r['end']:>6.2f} "
            f"{r.get('maxrss_mb') or '':>9}  {right}"
        )
    now = [name for name in names if "before" not in name]
    worst = max(results[name]["overhead_per_step"] for name in now)
    loop = max(results[name].get("bookkeeping_per_visit", 0.0) for name in now)
    print(
        f"finbisect's own overhead per step (per step - git bisect's): at most {worst:.3f} s, "
        f"of which the loop's bookkeeping {loop:.3f} s; target <= {TARGET_SECONDS} s: "
        f"{'met' if worst <= TARGET_SECONDS else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--source", type=Path, default=Path("/work/hist/py39"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-noisy", action="store_true", help="only --runs 1")
    parser.add_argument(
        "--before", type=Path, default=None, help="a checkout of the finbisect to compare with"
    )
    parser.add_argument(
        "--search-only", action="store_true", help="only the searches, simulated (no git)"
    )
    args = parser.parse_args()
    if args.search_only:
        figures = search_only(args.commits, args.before)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1) + "\n")
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="finbisect-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "history"
    start = time.monotonic()
    if (repo / ".git").is_dir():  # made by an earlier run with --workdir: reuse it
        log = subprocess.run(
            ["git", "-C", str(repo), "rev-list", "--reverse", "main"],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        good, bad, culprit = log[0], log[-1], log[(len(log) - 1) // 2]
    else:
        good, bad, culprit = make_history(repo, args.source, args.commits)
    made = time.monotonic() - start
    files = subprocess.run(
        ["git", "-C", str(repo), "ls-files"], check=True, capture_output=True, text=True
    ).stdout.count("\n")
    print(f"history: {args.commits} commits over {files} files ({made:.1f} s to make)")
    (work / "repro.py").write_text(REPRO)
    build = build_command(sys.executable)
    results: dict[str, Any] = {"commits": args.commits, "files": files, "culprit": culprit}
    results["git bisect run"] = git_bisect(work, repo, good, bad, build)
    hunts = [Hunt(name="runs1", extra=("--runs", "1"))]
    if not args.skip_noisy:
        hunts.append(Hunt(name="auto", extra=()))
    if args.before:  # the same hunts by the code before, alternated with this code's
        hunts = [
            h
            for hunt in hunts
            for h in (Hunt(name=f"{hunt.name} before", extra=hunt.extra, code=args.before), hunt)
        ]
    # Without building ahead, a visit's build is its own (a build ahead counts its seconds
    # where it is claimed), so the bookkeeping left over is the loop's alone.
    hunts.append(Hunt(name="runs1 no-ahead", extra=("--runs", "1", "--no-build-ahead")))
    for hunt in hunts:
        results[f"finbisect {hunt.name}"] = finbisect(work, repo, (good, bad), build, hunt)
    _print_table(results, [f"finbisect {hunt.name}" for hunt in hunts], culprit)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
