"""Rate-change hunts over a range where the rate does not change: does any name a commit?

    .venv/bin/python benchmarks/no_change.py [--hunts K] [--rates 0.3,0.05] [--n 64]
        [--max-runs 600] [--clean-prior default|adaptive|A,B]

The symptom shows at the same rate p in every run, before and after any commit,
so every commit named is wrong. For each p, `--hunts` seeded hunts of the
two-sided search (costs: runs only, as in rate_change.py) with a small budget;
prints how often each answer came and the highest confidence of any commit named.
Exit statuses other than "found" are the right answers: "old end wrong" (the good
end shows the symptom as often as the bad one), "rates inseparable", or "budget
spent". Uses two worker processes.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import statistics

from rate_hunts import prior_of

from finbisect.search.rate_change import RateChangeBisection
from finbisect.search.strategy import CandidateGraph, Costs
from finbisect.testing.simulate import simulate_hunt


def one_hunt(task: tuple[int, float, int, int, str]) -> tuple[str, int, float]:
    n, p, seed, max_runs, prior = task
    graph = CandidateGraph.linear(n)
    search = RateChangeBisection(
        graph,
        bug_is_new=True,
        max_runs=max_runs,
        costs=Costs(build_seconds=0.0, run_seconds=5.0, visit_seconds=0.0),
        prior=prior_of(prior),
    )
    # The culprit is irrelevant: both sides show the symptom at p.
    simulate_hunt(
        search, graph, culprit=n // 2, p=p, p_clean=p, bug_is_new=True, rng=random.Random(seed)
    )
    answer = search.answer()
    return answer.status.value, search.runs_recorded, answer.confidence or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hunts", type=int, default=100)
    parser.add_argument("--rates", default="0.3,0.05", help="comma-separated rates p")
    parser.add_argument("--n", type=int, default=64, help="commits in the range")
    parser.add_argument("--max-runs", type=int, default=600)
    parser.add_argument("--clean-prior", default="default", help="as rate_change.py's")
    args = parser.parse_args()
    prior_of(args.clean_prior)  # refuse a malformed prior before any work
    with multiprocessing.Pool(2) as pool:
        for p in (float(v) for v in args.rates.split(",")):
            tasks = [
                (args.n, p, 1000 + i, args.max_runs, args.clean_prior) for i in range(args.hunts)
            ]
            out = pool.map(one_hunt, tasks, chunksize=4)
            counts = collections.Counter(status for status, _, _ in out)
            named = [conf for status, _, conf in out if status == "found"]
            print(
                f"p {p}: {dict(sorted(counts.items()))}; median runs "
                f"{statistics.median(runs for _, runs, _ in out):g}; commits named "
                f"{len(named)} (highest confidence {max(named, default=0.0):.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
