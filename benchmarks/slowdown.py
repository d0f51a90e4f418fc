"""The smallest exit-time slowdown a timing hunt finds reliably on this machine.

    .venv/bin/python benchmarks/slowdown.py [--slowdowns 2,5,10,20,50] [--jitter 5] [--hunts 3]

For each slowdown, `--hunts` generated minipy histories (`linear_history`,
symptom "slow", culprit drawn at random, uniform jitter of `--jitter` ms at
every exit) are hunted with the real pieces: builds, `TimingProbe` (pyperf
command through proc.run) and git bisect's search — the loop the session runs
for `--symptom slow`. Prints, per slowdown, its ratio to the baseline (the
un-slowed exit time, i.e. the good end's mean, measured in the same run), how
many hunts named the culprit, were refused at the start (exit 4), named
another commit or ended inconclusive, and the mean hunt time; then the
smallest slowdown every hunt found.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from finbisect.build.builder import BuildConfig, Builder
from finbisect.build.cache import BuildCache
from finbisect.errors import EndpointError
from finbisect.models import HuntKind, Verdict
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from finbisect.runs.timing import TimingConfig, TimingProbe
from finbisect.search.strategy import AnswerStatus, ClassicBisection
from finbisect.testing.histories import linear_history

REPRO = "import threading\nthreading.Thread(target=lambda: None, daemon=True).start()\n"


@dataclass(frozen=True)
class Outcome:
    status: str  # "found", "wrong", "refused", "inconclusive"
    baseline_ms: float | None  # the good end's mean exit time
    seconds: float
    skips: int


def one_hunt(root: Path, *, slow_ms: int, culprit: int, args: argparse.Namespace) -> Outcome:
    started = time.monotonic()
    history = linear_history(
        root / "repo", commits=args.commits, culprit=culprit, symptom="slow", slow_ms=slow_ms,
        jitter_ms=args.jitter,
    )  # fmt: skip
    repro = root / "repro.py"
    repro.write_text(REPRO)
    config = BuildConfig(command="make", interpreter="python", jobs=1, timeout=120)
    with locked_workspace(root / "cache", UserRepo(history.path)) as workspace:
        workspace.refresh([history.good, history.bad])
        hunt = workspace.plan(history.good, history.bad, first_parent=False)
        builder = Builder(workspace, config, root / "logs", BuildCache(root / "builds"))

        def interpreter(sha: str) -> Path:
            built = builder.build(sha)
            if built.interpreter is None:
                raise RuntimeError(f"minipy did not build: {built.reason}")
            return built.interpreter

        probe = TimingProbe(
            TimingConfig(
                repro=repro, timeout=30, values=args.values, processes=args.processes,
                max_samples=args.max_samples,
            ),
            root / "logs",
        )  # fmt: skip
        try:
            probe.calibrate(interpreter(history.good), interpreter(history.bad))
        except EndpointError:
            baseline = probe.good.mean_ms if probe.good is not None else None
            return Outcome("refused", baseline, time.monotonic() - started, 0)
        search = ClassicBisection(
            hunt.graph, runs=1, bug_is_new=hunt.kind is HuntKind.REGRESSION, verify=False
        )
        skips = 0
        while (request := search.next_request()) is not None:
            sha = hunt.graph.shas[request.index]
            verdict = probe.judge(interpreter(sha), sha).verdict
            if verdict is Verdict.SKIP:
                skips += 1
                search.record_skip(request.index)
            else:
                bad = int(verdict is Verdict.BAD)
                search.record(request.index, symptoms=bad, clean=1 - bad)
        answer = search.answer()
    baseline = probe.good.mean_ms if probe.good is not None else None
    if answer.status is not AnswerStatus.FOUND or answer.culprit is None:
        status = "inconclusive"
    else:
        status = "found" if hunt.graph.shas[answer.culprit] == history.culprit else "wrong"
    return Outcome(status, baseline, time.monotonic() - started, skips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slowdowns", default="2,5,10,20,50", help="ms, comma-separated")
    parser.add_argument("--jitter", type=int, default=5, help="uniform jitter at exit, ms")
    parser.add_argument("--hunts", type=int, default=3, help="hunts per slowdown")
    parser.add_argument("--commits", type=int, default=8)
    parser.add_argument("--values", type=int, default=3, help="pyperf --values")
    parser.add_argument("--processes", type=int, default=3, help="pyperf --processes")
    parser.add_argument("--max-samples", type=int, default=36)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        f"{args.hunts} hunts per slowdown, {args.commits} commits, jitter 0-{args.jitter} ms, "
        f"pyperf {args.processes} processes x {args.values} values per measurement"
    )
    header = (
        f"{'slow ms':>7} {'baseline':>9} {'ratio':>6} | {'found':>5} {'refused':>7} "
        f"{'wrong':>5} {'inconc':>6} {'skips':>5} | {'s/hunt':>6}"
    )
    print(header)
    print("-" * len(header))
    reliable: int | None = None
    for slow_ms in sorted(int(s) for s in args.slowdowns.split(",")):
        outcomes = []
        for _ in range(args.hunts):
            culprit = rng.randrange(1, args.commits)
            with tempfile.TemporaryDirectory(prefix="finbisect-slow-") as tmp:
                root = Path(tmp)
                hunt = one_hunt(root, slow_ms=slow_ms, culprit=culprit, args=args)
                outcomes.append(hunt)
        count = {s: sum(o.status == s for o in outcomes) for s in ("found", "refused", "wrong")}
        inconclusive = sum(o.status == "inconclusive" for o in outcomes)
        baselines = [o.baseline_ms for o in outcomes if o.baseline_ms is not None]
        baseline = statistics.fmean(baselines) if baselines else float("nan")
        print(
            f"{slow_ms:>7} {baseline:>6.1f} ms {slow_ms / baseline:>6.2f} | "
            f"{count['found']:>5} {count['refused']:>7} {count['wrong']:>5} {inconclusive:>6} "
            f"{sum(o.skips for o in outcomes):>5} | "
            f"{statistics.fmean(o.seconds for o in outcomes):>6.1f}",
            flush=True,
        )
        if count["found"] == args.hunts and reliable is None:
            reliable = slow_ms
        elif count["found"] < args.hunts:
            reliable = None  # reliable means from here up
    if reliable is None:
        print("no slowdown tried was found by every hunt")
    else:
        print(f"smallest slowdown found by every hunt (and every larger one): {reliable} ms")


if __name__ == "__main__":
    main()
