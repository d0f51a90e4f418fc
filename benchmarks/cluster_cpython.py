"""A real CPython hunt on a Dask cluster of two `dask worker` processes, against the same hunt here.

    .venv/bin/python benchmarks/cluster_cpython.py [--history /work/hist/py39]
        [--position 18] [--before 6] [--after 7] [--percent 50] [--port 8791]
        [-j 2] [--workdir DIR] [--json PATH] [--finbisect-arg ARG]

The history is hang_speed.py's: a real CPython 3.9 (or 3.13) history with a
commit inserted after index `--position` that deadlocks `Py_FinalizeEx()` while
a daemon thread lives, in about `--percent` of runs (a flaky hang). The hunt
spans `--before` commits before the injected one to `--after` after it.

Measured in one run, in this order, each in an empty --cache-dir (and so an
empty compiler cache):
1. local: `finbisect run repro.py --repo ... --good ... --bad ... -j N`;
2. cluster: the same with `--dask-scheduler`, at Dask's own `dask scheduler`
   and two `dask worker --nthreads 1` processes started here, each with its
   own empty finbisect cache (FINBISECT_WORKER_CACHE), as two machines would
   have; they are stopped afterwards.
Printed and written: the wall times and their ratio (cluster / local), the
culprit, each worker's builds and runs (the JSON's `workers`), the history
bundle (its size, as the client makes it: what a worker on another machine
fetches; workers on this machine take the history from finbisect's clone, and
each says how it took it), each revision's artifact (its tree packed as the
cluster packs it: gzip-compressed tar), what each worker's cache holds
afterwards (what it built, what it received), and whether the evidence at the
culprit is a hang a worker caught or a rerun here. On this 2-core machine the
two workers share the cores the local hunt has alone: the ratio measures the
cluster's overhead, not its speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from build_speed import finbisect
from hang_speed import add_hunt_arguments, deadlock_hunt
from hunt_phases import say
from inject_history import git
from results import write_results

from finbisect.build.cache import BuildCache, disk_usage
from finbisect.cluster.artifact import pack
from finbisect.cluster.tasks import WORKER_CACHE_ENV

DASK = Path(sys.executable).with_name("dask")
MB = 1e6


def _wait_port(port: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port} after {seconds:.0f} s")


@contextmanager
def dask_cluster(work: Path, port: int, workers: int) -> Iterator[dict[str, Path]]:
    """`dask scheduler` and `workers` `dask worker`s on this machine: {address: its cache}."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str], env: dict[str, str]) -> None:
        with (work / f"{name}.log").open("w") as log:
            started.append(
                subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, **env},
                )
            )

    caches = {}
    try:
        start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                            "--no-dashboard"], {})  # fmt: skip
        _wait_port(port)
        for n in range(1, workers + 1):
            cache = work / f"worker-{n}"
            worker_port = port + n
            start(
                f"worker-{n}",
                [str(DASK), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                 "--host", "127.0.0.1", "--worker-port", str(worker_port), "--no-dashboard",
                 "--name", f"worker-{n}", "--local-directory", str(work / f"dask-{n}")],
                {WORKER_CACHE_ENV: str(cache)},
            )  # fmt: skip
            caches[f"tcp://127.0.0.1:{worker_port}"] = cache
        for address in caches:
            _wait_port(int(address.rsplit(":", 1)[1]))
        yield caches
    finally:
        for process in reversed(started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def bundle_bytes(history: Path, work: Path, good: str, bad: str) -> int:
    """The size of the bundle the client sends: the history of both ends (gitrepo.bundle)."""
    refs = []
    for name, sha in (("good", good), ("bad", bad)):
        git(history, "update-ref", f"refs/bench/{name}", sha)
        refs.append(f"refs/bench/{name}")
    path = work / "measure.bundle"
    git(history, "bundle", "create", "--quiet", str(path), *refs)
    size = path.stat().st_size
    path.unlink()
    return size


def worker_figures(
    cache_root: Path, address: str, steps: list[dict[str, Any]], names: dict[str, str]
) -> dict[str, Any]:
    """What one worker's cache holds after the hunt, each build with its artifact's size."""
    cache = BuildCache(cache_root / "builds")
    built_by = {s["sha"]: s.get("built_by", "") for s in steps}
    builds: list[dict[str, Any]] = []
    for build in sorted(cache.entries(), key=lambda b: names.get(b.sha, b.sha)):
        if not build.ok:
            continue
        builds.append(
            {"revision": names.get(build.sha, build.sha[:12]),
             "how": "built" if built_by.get(build.sha) == address else "received",
             "artifact_mb": round(pack(build).size / MB, 1),
             "own_mb": round(build.size / MB, 1)}
        )  # fmt: skip
    received = [b for b in builds if b["how"] == "received"]
    slot_git = sum(disk_usage(p) for p in cache_root.glob("workers/slot-*/source.git"))
    return {
        "address": address,
        "builds_mb": round(cache.total_bytes() / MB, 1),
        "ccache_mb": round(disk_usage(cache.ccache_dir) / MB, 1),
        "source_git_mb": round(slot_git / MB, 1),
        "received": len(received),
        "received_artifact_mb": round(sum(b["artifact_mb"] for b in received), 1),
        "received_own_mb": round(sum(b["own_mb"] for b in received), 1),
        "each": builds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_hunt_arguments(parser)  # hang_speed's: --history, --position, -j, --workdir, ...
    parser.set_defaults(history=Path("/work/hist/py39"))
    parser.add_argument("--before", type=int, default=6, help="good = this many before it")
    parser.add_argument("--after", type=int, default=7, help="bad = this many after it")
    parser.add_argument("--percent", type=int, default=50, help="runs that hang, percent")
    parser.add_argument("--port", type=int, default=8791, help="the scheduler's (and +1, +2)")
    args = parser.parse_args()

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="ccpy-"))
    source, history, shas, injected, repro = deadlock_hunt(
        work, args.history, args.position, args.percent
    )
    at = shas.index(injected)
    good, bad = shas[at - args.before], shas[min(at + args.after, len(shas) - 1)]
    names = {sha: f"{i - at:+d}" for i, sha in enumerate(shas)}  # the injected commit is +0
    bundle = bundle_bytes(history, work, good, bad)
    say(
        f"history {source}: the deadlock ({args.percent}% of runs) injected at {injected[:12]}; "
        f"hunt {good[:12]}..{bad[:12]} ({shas.index(bad) - shas.index(good)} candidates); "
        f"history bundle {bundle / MB:.1f} MB; -j{args.jobs}"
    )
    common: dict[str, Any] = {
        "good": good, "bad": bad, "repro": repro, "jobs": args.jobs, "injected": injected,
        "match": None,
    }  # fmt: skip
    local = finbisect(
        "local", history, work, **common, cache_dir=work / "cache-local", extra=args.finbisect_arg
    )
    say(f"local: {local.seconds:.0f} s, right culprit: {local.correct}")
    with dask_cluster(work, args.port, workers=2) as caches:
        cluster = finbisect(
            "cluster", history, work, **common, cache_dir=work / "cache-cluster",
            extra=[*args.finbisect_arg, "--dask-scheduler", f"tcp://127.0.0.1:{args.port}"],
        )  # fmt: skip
    say(f"cluster: {cluster.seconds:.0f} s, right culprit: {cluster.correct}")
    result = json.loads((work / "cluster.json").read_text())
    log = (work / "cluster.log").read_text()
    note = re.search(r"history bundle ([\d.]+ \w+)", log)
    took = dict(re.findall(r"worker (tcp://\S+) took the hunt's history (.+)", log))
    workers = [
        {**w, "history": took.get(w["address"], "(built nothing)"),
         **worker_figures(caches[w["address"]], w["address"], result["steps"], names)}
        for w in result["workers"]
    ]  # fmt: skip
    # A hang's stacks caught by a worker's run are the evidence: its log is on the worker.
    evidence_from = str(result.get("evidence", {}).get("log", "")).split(":/", 2)
    ratio = round(cluster.seconds / local.seconds, 3)
    for w in workers:
        say(
            f"{w['address']}: {w['builds']} builds, {w['runs']} runs; received "
            f"{w['received']} artifacts, {w['received_artifact_mb']} MB packed, "
            f"{w['received_own_mb']} MB added to its cache; cache {w['builds_mb']} MB builds, "
            f"{w['ccache_mb']} MB ccache, source.git {w['source_git_mb']} MB; took the "
            f"history {w['history']}"
        )
    evidence = "a worker's run" if len(evidence_from) > 2 else "a rerun here"
    say(f"evidence at the culprit: {evidence} ({result.get('evidence', {}).get('log', 'none')})")
    artifacts = [b["artifact_mb"] for w in workers for b in w["each"]]
    say(
        f"cluster / local wall: {ratio}x ({cluster.seconds:.0f} s vs {local.seconds:.0f} s); "
        f"bundle {bundle / MB:.1f} MB (the hunt said {note.group(1) if note else '?'}); "
        f"artifacts {min(artifacts, default=0)}-{max(artifacts, default=0)} MB; right culprit "
        f"both times: {local.correct and cluster.correct}"
    )
    if args.json is not None:
        write_results(args.json, {
            "jobs": args.jobs, "history": str(source), "position": args.position,
            "percent": args.percent, "injected": injected, "good": good, "bad": bad,
            "candidates": shas.index(bad) - shas.index(good), "ratio": ratio,
            "bundle_mb": round(bundle / MB, 1), "phases": [asdict(p) for p in (local, cluster)],
            "workers": workers, "evidence_from": evidence,
        })  # fmt: skip
    return 0 if local.correct and cluster.correct else 1


if __name__ == "__main__":
    sys.exit(main())
