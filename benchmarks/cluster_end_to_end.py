"""A flaky hunt here and on a Dask LocalCluster of 2 workers, in the same run (issue #12).

    .venv/bin/python benchmarks/cluster_end_to_end.py [--commits 64] [--percent 30]
        [--build-ms 2000] [--repeat 2] [--json out.json]

A generated minipy history (finbisect.testing.histories) whose culprit makes the
exit crash in `--percent` of runs; its build sleeps `--build-ms` (a stand-in for
a compiler, so that builds cost what a small real build costs without loading
these 2 shared cores). The same `finbisect run` (noisy search, defaults), each
time in a fresh cache: locally, then with `--dask-scheduler` at a
`LocalCluster(processes=True, n_workers=2, threads_per_worker=1)` started
afresh (empty worker caches) each of `--repeat` rounds. On this 2-core machine
the point is correctness and overhead: the figure is the cluster's wall time
over the local one's, with the builds and runs each did and the workers named.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from distributed import LocalCluster
from results import write_results

from finbisect.cluster.tasks import WORKER_CACHE_ENV
from finbisect.testing.histories import linear_history

FINBISECT = Path(sys.executable).with_name("finbisect")
REPRO = "import threading\nthreading.Thread(target=lambda: None, daemon=True).start()\n"
MATCH = r"pthread_mutex_destroy\(gil_mutex\) failed"


def _hunt(
    work: Path, name: str, history: Any, repro: Path, *, build: str, extra: list[str]
) -> dict[str, Any]:
    out = work / f"{name}.json"
    argv = [
        str(FINBISECT), "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", build, "--match", MATCH,
        "--cache-dir", str(work / f"cache-{name}"), "--json", str(out), *extra,
    ]  # fmt: skip
    start = time.monotonic()
    with (work / f"{name}.log").open("w") as log:
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: finbisect exited {done.returncode}; see {work}/{name}.log")
    result: dict[str, Any] = json.loads(out.read_text())
    result["measured_seconds"] = seconds
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=64)
    parser.add_argument("--percent", type=int, default=30, help="the symptom's rate, percent")
    parser.add_argument("--build-ms", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    build = f"sleep {args.build_ms / 1000:g} && make"

    work = Path(tempfile.mkdtemp(prefix="cluster-e2e-"))
    culprit_index = args.commits * 2 // 3
    history = linear_history(
        work / "repo", commits=args.commits, culprit=culprit_index, crash_percent=args.percent
    )
    repro = work / "repro.py"
    repro.write_text(REPRO)
    rows: dict[str, list[dict[str, Any]]] = {"local": [], "cluster": []}
    for round_ in range(args.repeat):
        # A fresh cluster each round, its workers' caches empty: both sides start cold.
        env = {WORKER_CACHE_ENV: str(work / f"workers-{round_ + 1}")}
        with LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0", env=env
        ) as cluster:
            for name, done in rows.items():
                extra = ["--dask-scheduler", cluster.scheduler_address] if name == "cluster" else []
                result = _hunt(
                    work, f"{name}-{round_ + 1}", history, repro, build=build, extra=extra
                )
                right = (result.get("culprit") or {}).get("sha") == history.culprit
                done.append(
                    {"seconds": round(result["measured_seconds"], 1), "right": right,
                     "builds": result["builds"], "runs": result["runs"],
                     "steps": len(result["steps"]), "workers": result.get("workers", [])}
                )  # fmt: skip
                print(f"{name} {round_ + 1}: {done[-1]}", flush=True)
    median = {name: statistics.median(r["seconds"] for r in runs) for name, runs in rows.items()}
    ratio = round(median["cluster"] / median["local"], 3)
    both = all(len(r["workers"]) == 2 for r in rows["cluster"])
    right = all(r["right"] for runs in rows.values() for r in runs)
    print(
        f"\ncluster / local wall (median of {args.repeat}): {ratio}x "
        f"({median['cluster']:.1f} s vs {median['local']:.1f} s); both workers did work every "
        f"time: {both}; right culprit every time: {right}"
    )
    if args.json is not None:
        write_results(args.json, {
            "commits": args.commits, "percent": args.percent, "build_ms": args.build_ms,
            "ratio": ratio, "median_seconds": median, "hunts": rows,
        })  # fmt: skip
    return 0 if right and both else 1


if __name__ == "__main__":
    sys.exit(main())
