"""The cluster's pure parts: chunks of runs, batches, artifacts, the workers in the JSON."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from finbisect.build.cache import BuildCache
from finbisect.cluster.artifact import pack, unpack
from finbisect.cluster.executor import _chunks
from finbisect.cluster.worker_logs import prune_hunt_logs
from finbisect.models import Commit, HuntKind, Outcome, OutcomeKind, Result, RunClass, Step, Verdict


@pytest.mark.parametrize(
    ("runs", "workers", "chunks"),
    [
        (1, 2, [(0, 1)]),
        (2, 2, [(0, 1), (1, 1)]),
        (5, 2, [(0, 3), (3, 2)]),
        (7, 3, [(0, 3), (3, 2), (5, 2)]),
        (3, 1, [(0, 3)]),
        (2, 8, [(0, 1), (1, 1)]),
    ],
)
def test_runs_are_split_evenly_over_the_workers(
    runs: int, workers: int, chunks: list[tuple[int, int]]
) -> None:
    assert _chunks(runs, workers) == chunks


def test_an_artifact_unpacks_into_another_cache_as_it_was(tmp_path: Path) -> None:
    tree = tmp_path / "built"
    (tree / "Lib").mkdir(parents=True)
    (tree / "python").write_bytes(b"#!/bin/sh\necho hi\n")
    (tree / "python").chmod(0o755)
    (tree / "Lib" / "os.py").write_text("x = 1\n")
    (tree / "Lib" / "same.py").write_text("x = 1\n")  # one object, two names
    here = BuildCache(tmp_path / "here")
    stored = here.store(
        fingerprint="f" * 16, sha="a" * 40, description="make", interpreter="python", tree=tree
    )
    artifact = pack(stored)
    there = BuildCache(tmp_path / "there")
    unpacked = unpack(artifact, there, tmp_path / "scratch")
    assert unpacked.ok
    assert (unpacked.tree / "python").read_bytes() == (tree / "python").read_bytes()
    assert os.access(unpacked.tree / "python", os.X_OK)
    assert (unpacked.tree / "Lib" / "same.py").read_text() == "x = 1\n"
    assert unpacked.interpreter_sha256 == stored.interpreter_sha256
    assert unpack(artifact, there, tmp_path / "scratch").path == unpacked.path  # once
    assert not any((tmp_path / "scratch").iterdir())  # nothing left half-unpacked


def _step(*workers: str, built_by: str = "") -> Step:
    outcomes = tuple(
        Outcome(
            kind=OutcomeKind.OK,
            run_class=RunClass.CLEAN,
            returncode=0,
            signal=None,
            duration=0.1,
            worker=worker,
        )
        for worker in workers
    )
    return Step(
        commit=Commit(sha="b" * 40, subject="s"),
        verdict=Verdict.GOOD,
        reason="ok",
        outcomes=outcomes,
        built_by=built_by,
    )


def test_workers_in_the_json_and_older_documents_still_read() -> None:
    local = _step("", "")
    document = local.to_json()
    assert "built_by" not in document
    assert all("worker" not in run for run in document["each_run"])
    assert Step.from_json(document) == local  # and a document from before the cluster
    remote = _step("tcp://a:1", "tcp://b:2", "tcp://a:1", built_by="tcp://b:2")
    assert Step.from_json(remote.to_json()) == remote
    assert remote.to_json()["ran_by"] == ["tcp://a:1", "tcp://b:2"]
    ends = Commit(sha="c" * 40, subject="e")
    result = Result(hunt=HuntKind.REGRESSION, good=ends, bad=ends, culprit=None)
    assert result.to_json()["workers"] == []
    with_workers = Result(
        hunt=HuntKind.REGRESSION, good=ends, bad=ends, culprit=None, steps=(local, remote)
    )
    assert with_workers.to_json()["workers"] == [
        {"address": "tcp://a:1", "builds": 0, "runs": 2},
        {"address": "tcp://b:2", "builds": 1, "runs": 1},
    ]


def test_a_workers_old_hunt_logs_go_oldest_first_within_the_logs_share(tmp_path: Path) -> None:
    slot = tmp_path / "slot-0"
    old = 3 * 3600  # seconds ago: not written in the last hour
    for age, hunt in enumerate(["h-current", "h-oldest", "h-older", "h-old", "h-recent"]):
        logs, repros = slot / "logs" / hunt, slot / "repros" / hunt
        logs.mkdir(parents=True)
        repros.mkdir(parents=True)
        (logs / "run-1.log").write_bytes(b"x" * 40_000)
        (repros / "repro.py").write_text("pass\n")
        seconds_ago = {"h-current": 9 * old, "h-recent": 60}.get(hunt, (5 - age) * old)
        then = time.time() - seconds_ago
        os.utime(logs, (then, then))
    # Room for about three hunts' logs: the two oldest but the current hunt go.
    assert prune_hunt_logs(slot, limit=3 * 45_000, current="h-current") == 2
    left = sorted(p.name for p in (slot / "logs").iterdir())
    assert left == ["h-current", "h-old", "h-recent"]
    assert sorted(p.name for p in (slot / "repros").iterdir()) == left
    assert prune_hunt_logs(slot, limit=0, current="h-current") == 1  # h-recent is spared
    assert prune_hunt_logs(tmp_path / "no-slot", limit=0, current="x") == 0
