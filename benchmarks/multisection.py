"""k-way multisection (issue #12): rounds and wall time with W workers, simulated.

    .venv/bin/python benchmarks/multisection.py [--hunts 100] [--json out.json]

Simulated regression hunts on a linear history of N commits (no builds), the
search driven by `next_batch(W)` (testing/simulate.py: simulate_rounds): each
round's visits made at once by W workers, then all recorded. Culprits are drawn
uniformly, the same ones (and the same random streams) for every W. Scenarios:
a deterministic repro under git bisect's search (`--runs 1`) and under the
default search, and a flaky one-sided repro (a bad revision shows the symptom
in a run with probability p, a good one never) at p = 0.3 and 0.05 under the
default search (`--model auto`: one-sided, then the two-sided check of the
answer), both ends verified as `finbisect run` does by default.

Wall time (RoundCosts): a visit costs the visit overhead, a build if its
revision was never built in this hunt, and its runs; a round lasts as long as
its slowest visit. Workers a round leaves idle share the runs of its visits
(its build reused from the shared cache), unless --no-split-runs. Figures are
ratios against W = 1 measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from finbisect.search.model_choice import AutoBisection
from finbisect.search.strategy import CandidateGraph, ClassicBisection, Costs, Search
from finbisect.testing.simulate import RoundCosts, RoundStats, simulate_rounds

WORKERS = (1, 2, 4, 8, 16)
HEADER = (
    f"{'scenario':<24} {'W':>3} | {'rounds':>7} {'x W=1':>6} | {'wall s':>7} {'x W=1':>6} | "
    f"{'runs':>7} {'builds':>6} | {'accuracy':>8} {'right/named':>11}"
)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    p: float
    make: Callable[[CandidateGraph], Search]


@dataclass(frozen=True, kw_only=True)
class Row:
    scenario: str
    workers: int
    rounds: float
    seconds: float
    runs: float
    builds: float
    accuracy: float  # right culprit over all hunts
    found: int
    correct: int


def scenarios(costs: Costs) -> list[Scenario]:
    def classic(graph: CandidateGraph) -> Search:
        return ClassicBisection(graph, runs=1, bug_is_new=True)

    def auto(graph: CandidateGraph) -> Search:
        return AutoBisection(graph, bug_is_new=True, max_runs=2000, costs=costs)

    return [
        Scenario(name="deterministic, --runs 1", p=1.0, make=classic),
        Scenario(name="deterministic, default", p=1.0, make=auto),
        Scenario(name="flaky p=0.3", p=0.3, make=auto),
        Scenario(name="flaky p=0.05", p=0.05, make=auto),
    ]


def measure(
    scenario: Scenario, n: int, workers: int, *, hunts: int, seed: int, costs: RoundCosts
) -> Row:
    graph = CandidateGraph.linear(n)
    stats: list[RoundStats] = []
    for hunt in range(hunts):
        rng = random.Random(seed * 100_003 + hunt)
        culprit = rng.randrange(n)
        stats.append(
            simulate_rounds(
                scenario.make(graph),
                graph,
                workers=workers,
                culprit=culprit,
                p=scenario.p,
                rng=rng,
                costs=costs,
            )
        )
    return Row(
        scenario=scenario.name,
        workers=workers,
        rounds=sum(s.rounds for s in stats) / hunts,
        seconds=sum(s.seconds for s in stats) / hunts,
        runs=sum(s.runs for s in stats) / hunts,
        builds=sum(s.builds for s in stats) / hunts,
        accuracy=sum(s.correct for s in stats) / hunts,
        found=sum(s.result.culprit is not None for s in stats),
        correct=sum(s.correct for s in stats),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hunts", type=int, default=100, help="simulated hunts per cell")
    parser.add_argument("--n", type=int, default=1024, help="commits in the range")
    parser.add_argument("--build-seconds", type=float, default=20.0)
    parser.add_argument("--run-seconds", type=float, default=1.0)
    parser.add_argument("--visit-seconds", type=float, default=1.0)
    parser.add_argument("--no-split-runs", action="store_true", help="idle workers stay idle")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    b, r, v = args.build_seconds, args.run_seconds, args.visit_seconds
    rounds_costs = RoundCosts(
        build_seconds=b, run_seconds=r, visit_seconds=v, split_runs=not args.no_split_runs
    )
    search_costs = Costs(build_seconds=b, run_seconds=r, visit_seconds=v)
    print(
        f"N={args.n}, {args.hunts} hunts per cell; build {b:g} s, run {r:g} s, visit {v:g} s; "
        f"idle workers {'stay idle' if args.no_split_runs else 'share runs'}"
    )
    print(HEADER, "-" * len(HEADER), sep="\n")
    started, rows = time.monotonic(), list[Row]()
    for scenario in scenarios(search_costs):
        if args.only and args.only not in scenario.name:
            continue
        base: Row | None = None
        for workers in WORKERS:
            row = measure(
                scenario, args.n, workers, hunts=args.hunts, seed=args.seed, costs=rounds_costs
            )
            base = base or row
            rows.append(row)
            print(
                f"{row.scenario:<24} {workers:>3} | {row.rounds:>7.1f} "
                f"{row.rounds / base.rounds:>5.2f}x | {row.seconds:>7.0f} "
                f"{row.seconds / base.seconds:>5.2f}x | {row.runs:>7.1f} {row.builds:>6.1f} | "
                f"{row.accuracy:>8.3f} {row.correct:>5}/{row.found:<5}",
                flush=True,
            )
    print(f"\n{time.monotonic() - started:.0f} s")
    if args.json:
        document = {
            "version": 1,
            "n": args.n,
            "hunts": args.hunts,
            "costs": {"build": b, "run": r, "visit": v, "split_runs": not args.no_split_runs},
            "rows": [row.__dict__ for row in rows],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
