"""Noisy bisection against naive "k runs per revision" and the information bound.

    .venv/bin/python benchmarks/flaky_search.py [--hunts K] [--build-seconds B] [--run-seconds R]

Simulated regression hunts on linear histories (no builds): for each (N, p),
culprits drawn uniformly, the same seeds for every method. Prints accuracy
(correct culprit over all hunts), mean search runs (endpoint runs apart),
mean distinct builds in the search, and ratios against the information bound
log2 N / C(p) (C: capacity of the Z-channel with crash rate p) and the naive
baselines, all measured in this run.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

from finbisect.search.stats import z_channel_capacity
from finbisect.search.strategy import CandidateGraph, ClassicBisection, Search
from finbisect.testing.simulate import Summary, noisy_factory, simulate_many

SIZES = (16, 128, 1024)
RATES = (0.5, 0.2, 0.05)


def classic(k: int) -> Callable[[CandidateGraph], Search]:
    def make(graph: CandidateGraph) -> Search:
        return ClassicBisection(graph, runs=k, bug_is_new=True)

    return make


def calibrated_k(n: int, p: float, *, hunts: int, seed: int, target: float) -> tuple[int, Summary]:
    """The smallest k whose naive bisection reaches `target` accuracy here (measured)."""
    results: dict[int, Summary] = {}

    def good(k: int) -> bool:
        results[k] = simulate_many(classic(k), n, p, hunts=hunts, seed=seed)
        return results[k].accuracy >= target

    hi = 1
    while not good(hi) and hi < 4096:
        hi *= 2
    lo = hi // 2  # not good (or 0)
    while lo + 1 < hi:  # accuracy grows with k; the seeds are shared, so this is steady
        mid = (lo + hi) // 2
        if good(mid):
            hi = mid
        else:
            lo = mid
    return hi, results[hi]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hunts", type=int, default=300, help="simulated hunts per (N, p)")
    parser.add_argument("--build-seconds", type=float, default=300.0)
    parser.add_argument("--run-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=20240)
    args = parser.parse_args()
    b, r = args.build_seconds, args.run_seconds
    print(
        f"{args.hunts} hunts per row; cost model: build {b:g} s, run {r:g} s "
        f"(ratio {b / r:g}); search runs exclude calibration (bug end) and endpoint runs"
    )
    header = (
        f"{'N':>5} {'p':>5} | {'method':<14} {'acc':>6} {'calib':>6} {'ends':>6} "
        f"{'search':>7} {'/bound':>7} {'builds':>6} {'/log2N':>6} {'hours':>6} | {'vs':>9}"
    )
    print(header)
    print("-" * len(header))
    started = time.monotonic()
    for n in SIZES:
        for p in RATES:
            bound = math.log2(n) / z_channel_capacity(p)
            seed = args.seed + n * 1000 + int(p * 100)
            ours = simulate_many(
                noisy_factory(build_seconds=b, run_seconds=r), n, p, hunts=args.hunts, seed=seed
            )
            k5 = simulate_many(classic(5), n, p, hunts=args.hunts, seed=seed)
            k95, kcal = calibrated_k(n, p, hunts=args.hunts, seed=seed, target=0.95)
            rows = [("finbisect", ours), ("naive k=5", k5), (f"naive k={k95}", kcal)]
            for name, s in rows:
                hours = (
                    (s.builds + 2) * b + (s.calibration_runs + s.endpoint_runs + s.search_runs) * r
                ) / 3600
                ratio = (
                    f"{s.search_runs / kcal.search_runs:.2f}x k{k95}" if name == "finbisect" else ""
                )
                print(
                    f"{n:>5} {p:>5} | {name:<14} {s.accuracy:>6.3f} {s.calibration_runs:>6.1f} "
                    f"{s.endpoint_runs:>6.1f} {s.search_runs:>7.1f} {s.search_runs / bound:>6.2f}x "
                    f"{s.builds:>6.1f} {s.builds / math.log2(n):>5.2f}x {hours:>6.2f} | {ratio:>9}"
                )
            print(f"{'':>5} {'':>5} | {'bound':<14} {'':>6} {'':>6} {'':>6} {bound:>7.1f}")
    print("\nCost trade-off (finbisect only): the build/run cost ratio sets runs against builds")
    for n, p in ((1024, 0.5), (1024, 0.2)):
        bound = math.log2(n) / z_channel_capacity(p)
        for build in (r, 5 * r, 60 * r):
            s = simulate_many(
                noisy_factory(build_seconds=build, run_seconds=r), n, p, hunts=args.hunts, seed=7
            )
            print(
                f"  N={n} p={p} build/run={build / r:>4g}: accuracy {s.accuracy:.3f}, "
                f"search runs {s.search_runs / bound:.2f}x bound, "
                f"builds {s.builds / math.log2(n):.2f}x log2 N"
            )
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
