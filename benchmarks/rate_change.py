"""Rate-change hunts (two-sided noise): finbisect against git_bayesect and naive k runs.

    .venv/bin/python benchmarks/rate_change.py [--hunts K] [--build-seconds B] [--run-seconds R]
        [--visit-seconds V] [--max-runs M] [--confidence C] [--sizes 64,1024] [--json FILE]
        [--clean-prior adaptive|A,B] [--rates P0-P1,...] [--finbisect-only]

Simulated regression hunts on linear histories (no builds): the repro shows
the symptom with probability p0 per run before the culprit and p1 after it.
For each cell (N, p0, p1), culprits are drawn uniformly with the same seeds
for every method, which all get the same run budget and confidence:

- finbisect: RateChangeBisection (two-sided model forced), cost model
  build B s / run R s / visit V s (it trades runs against builds; with
  `--build-seconds 0 --visit-seconds 0` it minimises runs, as git_bayesect does).
  `--clean-prior A,B`: a Beta(A, B) prior on the clean side's rate instead of
  the default uniform Beta(1, 1) (A may be a fraction, e.g. 0.5); `adaptive`:
  RatePrior.adaptive(), a mixture of Beta(1, b) the runs weigh.
  `--rates` and `--finbisect-only` make quick studies of a few cells (the
  same seeds per cell as the full grid).
- git_bayesect: its published method, reimplemented in bayesect_model.py (see
  there for the source and what was checked): one run at a time at the
  position minimising expected entropy, Jeffreys priors on both rates, stop
  when one hypothesis holds the confidence.
- naive k: git bisect with k runs per revision and an oracle threshold (the
  count that best separates p0 from p1, which needs both known in advance),
  k the smallest reaching the confidence as accuracy here (measured).

Accuracy = correct culprits over hunts that named one (what a stated
confidence promises); "inconclusive" = hunts that named none (exit 5).
"bound" = log2 N / C(p0, p1), C the capacity of the binary asymmetric
channel (no method can average fewer runs). Uses two worker processes.
One hunt by each method: rate_hunts.py and naive_k.py.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from naive_k import run_naive
from rate_hunts import METHODS, Hunt, Task, prior_of, run_bayesect, run_finbisect, run_model

from finbisect.search.rate_posterior import asymmetric_channel_capacity

SIZES = (64, 1024)
RATES = ((0.02, 0.2), (0.05, 0.5), (0.1, 0.4), (0.1, 0.7))
WORKERS = 2


def run_task(task: Task) -> list[Hunt]:
    if task.method == "finbisect":
        return [run_finbisect(task, s) for s in task.seeds]
    if task.method in METHODS:
        return [run_model(task, s) for s in task.seeds]
    if task.method == "git_bayesect":
        return [run_bayesect(task, s) for s in task.seeds]
    k = int(task.method.split(":")[1])
    return [run_naive(task, s, k) for s in task.seeds]


@dataclass(frozen=True, kw_only=True)
class Row:
    hunts: int
    accuracy: float  # correct / named
    inconclusive: float  # share of hunts naming no culprit
    confidence: float  # mean stated confidence over named hunts
    median_runs: float
    mean_runs: float
    builds: float

    @classmethod
    def of(cls, hunts: list[Hunt]) -> Row:
        named = [h for h in hunts if h.named]
        return cls(
            hunts=len(hunts),
            accuracy=sum(h.correct for h in named) / len(named) if named else 0.0,
            inconclusive=1 - len(named) / len(hunts),
            confidence=statistics.fmean(h.confidence for h in named) if named else 0.0,
            median_runs=statistics.median(h.runs for h in hunts),
            mean_runs=statistics.fmean(h.runs for h in hunts),
            builds=statistics.fmean(h.builds for h in hunts),
        )


def split(task: Task, parts: int) -> list[Task]:
    chunks = [task.seeds[i::parts] for i in range(parts)]
    return [Task(**{**asdict(task), "seeds": chunk}) for chunk in chunks if chunk]


def measure(pool: multiprocessing.pool.Pool, tasks: list[Task]) -> list[list[Hunt]]:
    """Run tasks on the pool in chunks; results in task order, seeds reordered consistently."""
    parts = [split(t, 8) for t in tasks]
    flat = [p for ps in parts for p in ps]
    results = pool.map(run_task, flat, chunksize=1)
    out, i = [], 0
    for ps in parts:
        hunts: list[Hunt] = []
        for _ in ps:
            hunts += results[i]
            i += 1
        out.append(hunts)
    return out


def calibrate_naive(
    pool: multiprocessing.pool.Pool, base: Task, target: float
) -> tuple[int, list[Hunt]]:
    """The smallest k whose naive bisection reaches `target` accuracy on these hunts."""
    found: dict[int, list[Hunt]] = {}

    def good(k: int) -> bool:
        (found[k],) = measure(pool, [Task(**{**asdict(base), "method": f"naive:{k}"})])
        return Row.of(found[k]).accuracy >= target

    hi = 1
    while not good(hi) and hi < 1024:
        hi *= 2
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if good(mid):
            hi = mid
        else:
            lo = mid
    return hi, found[hi]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hunts", type=int, default=200, help="simulated hunts per cell")
    parser.add_argument("--build-seconds", type=float, default=300.0)
    parser.add_argument("--run-seconds", type=float, default=5.0)
    parser.add_argument("--visit-seconds", type=float, default=1.0)
    parser.add_argument("--max-runs", type=int, default=5000, help="run budget, every method")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--seed", type=int, default=20261)
    parser.add_argument("--json", type=Path, help="write every row here")
    parser.add_argument(
        "--clean-prior",
        default="default",
        help="finbisect's prior on the clean side's rate: A,B (one Beta; the default is "
        "RatePrior()'s, uniform) or adaptive",
    )
    parser.add_argument(
        "--rates",
        default=",".join(f"{p0}-{p1}" for p0, p1 in RATES),
        help="(p0, p1) cells, P0-P1 comma-separated",
    )
    parser.add_argument(
        "--finbisect-only",
        action="store_true",
        help="skip git_bayesect and naive k (quick studies; the ratio column is then empty)",
    )
    parser.add_argument(
        "--models",
        action="store_true",
        help="instead: the issue's setting (N 64, p0 0.03-0.1, p1 0.3-0.7), one-sided vs auto",
    )
    parser.add_argument(
        "--silent-clean-side",
        action="store_true",
        help="with --models: p0 = 0 (one-sided truth), p1 in 0.05-0.7",
    )
    args = parser.parse_args()
    started = time.monotonic()
    if args.models:
        models_study(args)
        print(f"\n{time.monotonic() - started:.0f} s")
        return
    print(
        f"{args.hunts} hunts per cell, budget {args.max_runs} runs, confidence "
        f"{args.confidence}; finbisect's cost model: build {args.build_seconds:g} s, "
        f"run {args.run_seconds:g} s, visit {args.visit_seconds:g} s; clean prior "
        f"{args.clean_prior}"
    )
    header = (
        f"{'N':>5} {'p0':>5} {'p1':>4} | {'method':<12} {'acc':>6} {'incl':>5} {'conf':>6} "
        f"{'median':>7} {'mean':>7} {'builds':>6} {'/bound':>7} | {'median vs ours':>14}"
    )
    print(header)
    print("-" * len(header))
    table = []
    prior_of(args.clean_prior)  # refuse a malformed prior before any work
    rates = [tuple(float(v) for v in cell.split("-")) for cell in args.rates.split(",")]
    with multiprocessing.Pool(WORKERS) as pool:
        for n in (int(s) for s in args.sizes.split(",")):
            for p0, p1 in rates:
                cell = n * 10_000 + round(p0 * 100) * 100 + round(p1 * 100)
                seeds = tuple(
                    args.seed * 1_000_003 + cell * 1009 + 2 * i for i in range(args.hunts)
                )
                base = Task(
                    method="finbisect",
                    n=n,
                    p0=p0,
                    p1=p1,
                    seeds=seeds,
                    max_runs=args.max_runs,
                    confidence=args.confidence,
                    build_seconds=args.build_seconds,
                    run_seconds=args.run_seconds,
                    visit_seconds=args.visit_seconds,
                    clean_prior=args.clean_prior,
                )
                bound = math.log2(n) / asymmetric_channel_capacity(p0, p1)
                if args.finbisect_only:
                    (ours,) = measure(pool, [base])
                    rows = {"finbisect": Row.of(ours)}
                else:
                    ours, theirs = measure(
                        pool, [base, Task(**{**asdict(base), "method": "git_bayesect"})]
                    )
                    k, naive = calibrate_naive(pool, base, args.confidence)
                    rows = {
                        "finbisect": Row.of(ours),
                        "git_bayesect": Row.of(theirs),
                        f"naive k={k}": Row.of(naive),
                    }
                mine = rows["finbisect"].median_runs
                for name, row in rows.items():
                    versus = "" if name == "finbisect" else f"{mine / row.median_runs:.2f}x"
                    print(
                        f"{n:>5} {p0:>5} {p1:>4} | {name:<12} {row.accuracy:>6.3f} "
                        f"{row.inconclusive:>5.2f} {row.confidence:>6.3f} {row.median_runs:>7.0f} "
                        f"{row.mean_runs:>7.1f} {row.builds:>6.1f} "
                        f"{row.mean_runs / bound:>6.2f}x | {versus:>14}"
                    )
                    table.append({"n": n, "p0": p0, "p1": p1, "method": name, **asdict(row)})
                print(f"{'':>17} | {'bound':<12} {'':>6} {'':>5} {'':>6} {bound:>7.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    print(f"\n{time.monotonic() - started:.0f} s")


def models_study(args: argparse.Namespace) -> None:
    """Today's one-sided search against auto on hunts like the issue's ten."""
    print("N 64, p0 uniform in 0.03-0.1, p1 in 0.3-0.7 per hunt; one-sided (today) vs auto")
    draw = random.Random(args.seed)
    tasks = []
    for i in range(args.hunts):
        p0, p1 = round(draw.uniform(0.03, 0.1), 3), round(draw.uniform(0.3, 0.7), 3)
        if args.silent_clean_side:  # today's one-sided hunts: what checking them costs
            p0, p1 = 0.0, round(draw.uniform(0.05, 0.7), 3)
        for method in METHODS:
            tasks.append(
                Task(
                    method=method,
                    n=64,
                    p0=p0,
                    p1=p1,
                    seeds=(args.seed * 7919 + 2 * i,),
                    max_runs=args.max_runs,
                    confidence=args.confidence,
                    build_seconds=args.build_seconds,
                    run_seconds=args.run_seconds,
                    visit_seconds=args.visit_seconds,
                )
            )
    with multiprocessing.Pool(WORKERS) as pool:
        results = pool.map(run_task, tasks, chunksize=4)
    for method in METHODS:
        hunts = [h for t, r in zip(tasks, results, strict=True) if t.method == method for h in r]
        right = sum(h.correct for h in hunts)
        wrong = [h for h in hunts if h.named and not h.correct]
        refused = sum(not h.named for h in hunts)
        worst = max((h.confidence for h in wrong), default=0.0)
        print(
            f"{method:<10} right {right:>4}  no answer {refused:>4}  wrong {len(wrong):>4}"
            f" (highest stated confidence {worst:.3f})  median runs "
            f"{statistics.median(h.runs for h in hunts):.0f} (mean "
            f"{statistics.fmean(h.runs for h in hunts):.1f})"
        )


if __name__ == "__main__":
    main()
