"""`finbisect run --dask-scheduler` on a real Dask LocalCluster (two worker processes).

The hunts give the answers a local hunt gives, with the work done by both
workers; a worker killed mid-hunt costs nothing; a cluster that goes away
mid-hunt ends it like Ctrl-C (saved, one line, exit 9), and the same command
without --dask-scheduler then finishes it here. Workers on this machine take
the history from finbisect's clone (others from the bundle), keep their cache
within --cache-size, and send back the stacks of the hangs they catch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from finbisect.build.cache import BuildCache, parse_size, split_cache_size
from finbisect.cluster.executor import DaskExecutor
from finbisect.cluster.tasks import WORKER_CACHE_ENV
from finbisect.runs import stacks
from finbisect.testing.histories import linear_history
from finbisect.testing.minipy_trace import RANDOM_STATE_ENV, write_random_state
from tests.conftest import GIL_MATCH, Hunt, invoke


def _cluster(root: Path, seed: int, workers: int = 2, **env: str) -> LocalCluster:
    """Single-threaded worker processes with their own cache and minipy randomness."""
    root.mkdir(parents=True, exist_ok=True)
    write_random_state(root / "random-state", seed)
    env |= {WORKER_CACHE_ENV: str(root / "workers"), RANDOM_STATE_ENV: str(root / "random-state")}
    return LocalCluster(
        processes=True, n_workers=workers, threads_per_worker=1, dashboard_address=":0", env=env,
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _resource_tracker() -> None:
    """multiprocessing's tracker, which the first spawned worker starts and which outlives
    every cluster: started before any test, so no test counts it as its own."""
    resource_tracker.ensure_running()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with _cluster(tmp_path_factory.mktemp("dask"), seed=12) as running:
        yield running


def _json(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "out.json").read_text())
    return data


def _addresses(cluster: LocalCluster) -> set[str]:
    return {worker.worker_address for worker in cluster.workers.values()}


def _check_workers(data: dict[str, Any], addresses: set[str]) -> None:
    """Both workers ran; the per-worker counts add up to the hunt's."""
    workers = data["workers"]
    assert {w["address"] for w in workers if w["runs"] > 0} == addresses
    assert sum(w["runs"] for w in workers) == data["runs"]
    for step in data["steps"]:
        assert step["built_by"] in addresses
        assert set(step["ran_by"]) <= addresses
        assert {run["worker"] for run in step["each_run"]} == set(step["ran_by"])


def test_deterministic_hunt_matches_the_local_one(
    tmp_path: Path, hunt: Hunt, cluster: LocalCluster
) -> None:
    history = linear_history(tmp_path / "repo", commits=30, culprit=19)
    local = hunt(history.path, history.good, history.bad, "--runs", "2", "--no-evidence")
    assert local.exit_code == 0, local.stderr
    here = _json(tmp_path)
    assert here["workers"] == []
    assert all("built_by" not in step and "ran_by" not in step for step in here["steps"])
    # The same hunt on the cluster: the interpreters built here go to the workers
    result = hunt(
        history.path, history.good, history.bad, "--runs", "2", "--no-evidence",
        "--dask-scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    # (with several revisions a round, the cluster may test others: the same where both did)
    verdicts = {s["sha"]: (s["verdict"], s["runs"]) for s in data["steps"]}
    local_verdicts = {s["sha"]: (s["verdict"], s["runs"]) for s in here["steps"]}
    assert {sha: verdicts[sha] for sha in local_verdicts.keys() & verdicts.keys()} == {
        sha: local_verdicts[sha] for sha in local_verdicts.keys() & verdicts.keys()
    }
    assert len(local_verdicts.keys() & verdicts.keys()) >= 3  # the ends and the culprit
    addresses = _addresses(cluster)
    assert {w["address"] for w in data["workers"] if w["runs"] > 0} == addresses
    # what was built here was sent, not built again; the rest built once on the cluster
    built_here = [s for s in data["steps"] if s["sha"] in local_verdicts]
    assert all("built_by" not in s and s["cached"] for s in built_here)
    built_there = [s for s in data["steps"] if s["sha"] not in local_verdicts]
    assert all(s["built_by"] in addresses for s in built_there)
    assert data["builds"] == sum(w["builds"] for w in data["workers"]) == len(built_there)
    assert all(set(s["ran_by"]) <= addresses for s in data["steps"])
    assert "on the Dask cluster at" in result.stderr


def test_flaky_hunt_on_the_cluster(
    tmp_path: Path, hunt: Hunt, cache: Path, cluster: LocalCluster
) -> None:
    history = linear_history(
        tmp_path / "repo", commits=60, culprit=41, crash_percent=30, broken={12, 50}
    )
    result = hunt(
        history.path, history.good, history.bad, "--match", GIL_MATCH, "--confidence", "0.999",
        "--dask-scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    assert data["confidence"] >= 0.999
    assert abs(data["p"]["estimate"] - 0.3) < 0.2
    # revisits reuse the revision's build: one build per revision (broken ones included),
    # or none where the workers' cache had it from the test before (the same first commits)
    assert data["builds"] + data["cached_builds"] == len(data["steps"])
    assert sum(w["builds"] for w in data["workers"]) == len(data["steps"])
    assert sum(s["runs"] for s in data["steps"]) > len(data["steps"])  # revisits happened
    _check_workers(data, _addresses(cluster))
    if stacks.gdb_path() is not None:
        # The evidence rerun ran here, on the culprit's tree brought from the cluster (the
        # symptom may not show in its few runs): the only build in this machine's cache.
        assert "did not build" not in data.get("evidence_note", "")
        assert [p.parent.name for p in cache.glob("builds/*/*/build.json")] == [history.culprit]


@contextlib.contextmanager
def _when_visits(cache: Path, visits: int, act: Callable[[], object]) -> Iterator[None]:
    """Calls `act` (from a thread) once the hunt has saved `visits` visits."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            for state in cache.glob("repos/*/hunts/*/state.json"):
                try:
                    saved = len(json.loads(state.read_text())["visits"])
                except (OSError, ValueError, KeyError):
                    continue
                if saved >= visits:
                    act()
                    done.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def test_a_worker_killed_mid_hunt_loses_nothing(tmp_path: Path, hunt: Hunt, cache: Path) -> None:
    # 0.3 s per run: the kill lands while runs are under way
    history = linear_history(tmp_path / "repo", commits=30, culprit=11, slow_ms=300)
    with _cluster(tmp_path / "dask", seed=3) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids)[0]
        with _when_visits(cache, 2, lambda: os.kill(pids[victim], signal.SIGKILL)):
            result = hunt(
                history.path, history.good, history.bad, "--runs", "4", "--no-evidence",
                "--dask-scheduler", cluster.scheduler_address,
            )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    assert all(step["runs"] == 4 for step in data["steps"])  # each visit recorded once
    assert victim in {w["address"] for w in data["workers"]}  # it worked before it died
    assert len(data["workers"]) >= 2


def test_lost_scheduler_saves_the_hunt_and_it_resumes_here(
    tmp_path: Path, hunt: Hunt, cache: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=30, culprit=11, slow_ms=300)
    cluster = _cluster(tmp_path / "dask", seed=5)
    try:
        with _when_visits(cache, 2, cluster.close):
            result = hunt(
                history.path, history.good, history.bad, "--runs", "2", "--no-evidence",
                "--dask-scheduler", cluster.scheduler_address,
            )  # fmt: skip
    finally:
        cluster.close()
    assert result.exit_code == 9, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("finbisect: error: lost the Dask scheduler at tcp://"), line
    (state,) = cache.glob("repos/*/hunts/*/state.json")
    saved = json.loads(state.read_text())
    assert saved["status"] == "interrupted"
    assert len(saved["visits"]) >= 2
    again = hunt(history.path, history.good, history.bad, "--runs", "2", "--no-evidence")
    assert again.exit_code == 0, again.stderr
    assert "resuming interrupted hunt" in again.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    assert {w["address"] for w in data["workers"]}  # the steps done on the cluster say so


def test_a_worker_without_a_toolchain_refuses_in_one_line(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=8, culprit=4)
    only_git = tmp_path / "bin"
    only_git.mkdir()
    git = shutil.which("git")
    assert git is not None
    (only_git / "git").symlink_to(git)
    with _cluster(tmp_path / "dask", seed=1, workers=1, PATH=str(only_git)) as cluster:
        result = invoke(
            "run", str(repro), "--repo", str(history.path), "--good", history.good,
            "--bad", history.bad, "--cache-dir", str(cache),
            "--dask-scheduler", cluster.scheduler_address,
        )  # fmt: skip
    assert result.exit_code == 9, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"finbisect: error: worker tcp://\S+ cannot build \w{12}: cannot build CPython: "
        r"make and cc not found on PATH .*",
        last,
    ), last


def _took(stderr: str) -> dict[str, str]:
    """Each worker's report of how it took a hunt's history: {address: how}, said once."""
    said = re.findall(r"worker (tcp://\S+) took the hunt's history (.+)", stderr)
    assert len(said) == len({address for address, _ in said}), said
    return dict(said)


def test_a_worker_here_takes_the_history_from_the_clone_and_others_the_bundle(
    tmp_path: Path, hunt: Hunt, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _cluster(tmp_path / "dask", seed=7) as cluster:
        # A worker on this machine reads finbisect's clone: no bundle moves. (A flaky
        # hunt: revisits, whose build is the first visit's, say nothing more.)
        history = linear_history(tmp_path / "repo", commits=12, culprit=7, crash_percent=50)
        result = hunt(
            history.path, history.good, history.bad, "--match", GIL_MATCH, "--no-evidence",
            "--dask-scheduler", cluster.scheduler_address,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        data = _json(tmp_path)
        assert data["culprit"]["sha"] == history.culprit
        assert sum(s["runs"] for s in data["steps"]) > len(data["steps"])  # revisits happened
        took = _took(result.stderr)
        assert set(took) == {s["built_by"] for s in data["steps"] if "built_by" in s}
        assert set(took.values()) == {"from finbisect's clone here (same machine: no bundle)"}
        # As a worker elsewhere sees it: the clone's path is not there, so the bundle comes.
        start = DaskExecutor.start

        def elsewhere(self: DaskExecutor, **kwargs: Any) -> None:
            start(self, **{**kwargs, "clone": tmp_path / "on-another-machine"})

        monkeypatch.setattr(DaskExecutor, "start", elsewhere)
        other = linear_history(tmp_path / "other", commits=12, culprit=4, crash_percent=100)
        result = hunt(
            other.path, other.good, other.bad, "--runs", "2", "--no-evidence",
            "--dask-scheduler", cluster.scheduler_address,
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert _json(tmp_path)["culprit"]["sha"] == other.culprit
    took = _took(result.stderr)
    assert took
    assert set(took.values()) == {"from the bundle"}


def test_worker_caches_are_kept_within_cache_size(tmp_path: Path, hunt: Hunt) -> None:
    root = tmp_path / "dask"
    builds = BuildCache(root / "workers" / "builds")  # the workers' machine cache (_cluster)
    old = []
    for n in range(3):  # 1 MB each, last used two hours ago: what an old hunt left
        tree = tmp_path / f"old-{n}"
        tree.mkdir()
        (tree / "python").write_bytes(os.urandom(1024**2))
        stored = builds.store(
            fingerprint="0" * 16, sha=f"{n}" * 40, description="make", interpreter="python",
            tree=tree,
        )  # fmt: skip
        two_hours_ago = time.time() - 7200
        os.utime(stored.path / "build.json", (two_hours_ago, two_hours_ago))
        old.append(stored.sha)
    history = linear_history(tmp_path / "repo", commits=12, culprit=7)
    with _cluster(root, seed=9) as cluster:
        result = hunt(
            history.path, history.good, history.bad, "--runs", "2", "--no-evidence",
            "--cache-size", "2M", "--dask-scheduler", cluster.scheduler_address,
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    kept = {b.sha for b in builds.entries()}
    # 70% of 2M for builds: at most one old build fits beside the hunt's, which all stay
    assert len(kept & set(old)) <= 1
    assert {s["sha"] for s in data["steps"]} <= kept
    assert builds.total_bytes() <= split_cache_size(parse_size("2M")).builds


@pytest.mark.skipif(stacks.gdb_path() is None, reason="needs gdb")
def test_a_hang_a_worker_caught_comes_back_with_its_stacks(
    tmp_path: Path, hunt: Hunt, cluster: LocalCluster
) -> None:
    history = linear_history(tmp_path / "repo", commits=8, culprit=5, symptom="hang")
    result = hunt(
        history.path, history.good, history.bad, "--timeout", "10", "--runs", "1",
        "--dask-scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    evidence = data["evidence"]
    assert evidence["sha"] == history.culprit
    assert evidence["kind"] == "hang"
    assert evidence["threads"]
    # the stacks gdb took on the worker during the hunt: no rerun here
    assert evidence["log"].startswith(tuple(f"{a}:/" for a in _addresses(cluster)))
