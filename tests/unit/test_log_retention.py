"""Old hunts' and compares' logs go, oldest first, when they outgrow their share."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from finbisect.build.cache import split_cache_size
from finbisect.hunt.log_retention import PRUNED_NOTE, log_folders, prune_logs


def _hunt(cache: Path, hunt_id: str, status: str, log_bytes: int = 50_000) -> Path:
    folder = cache / "repos" / "r-1" / "hunts" / hunt_id
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"status": status, "visits": []}))
    (folder / "run-abc-1.log").write_bytes(b"x" * log_bytes)
    (folder / "evidence").mkdir()
    (folder / "evidence" / "gdb.log").write_bytes(b"y" * 1000)
    return folder


def _compare(cache: Path, compare_id: str, hours_ago: float = 2) -> Path:
    folder = cache / "repos" / "r-1" / "compares" / compare_id
    folder.mkdir(parents=True)
    (folder / "build-a.log").write_bytes(b"z" * 50_000)
    then = time.time() - hours_ago * 3600
    os.utime(folder, (then, then))
    return folder


def test_the_oldest_ended_logs_go_first_and_the_state_stays(tmp_path: Path) -> None:
    oldest = _hunt(tmp_path, "20260101T000000.000000Z", "finished")
    compare = _compare(tmp_path, "20260201T000000.000000Z")
    newest = _hunt(tmp_path, "20260301T000000.000000Z", "finished")
    assert [f.path for f in log_folders(tmp_path)] == [oldest, compare, newest]
    one = log_folders(tmp_path)[-1].size

    dropped = prune_logs(tmp_path, one)  # room for one folder's logs

    assert [f.path for f in dropped] == [oldest, compare]
    assert sorted(p.name for p in oldest.iterdir()) == [PRUNED_NOTE, "state.json"]
    assert not compare.exists()
    assert (newest / "run-abc-1.log").is_file()
    assert prune_logs(tmp_path, one) == []  # within bounds now: nothing more goes


def test_resumable_hunts_the_current_one_and_fresh_compares_keep_their_logs(tmp_path: Path) -> None:
    interrupted = _hunt(tmp_path, "20260101T000000.000000Z", "interrupted")
    running = _hunt(tmp_path, "20260102T000000.000000Z", "running")
    current = _hunt(tmp_path, "20260103T000000.000000Z", "finished")
    failed = _hunt(tmp_path, "20260104T000000.000000Z", "failed")
    running_compare = _compare(tmp_path, "20260105T000000.000000Z", hours_ago=0)

    dropped = prune_logs(tmp_path, 0, keep=current)

    assert [f.path for f in dropped] == [failed]
    assert (running_compare / "build-a.log").is_file()
    for kept in (interrupted, running, current):
        assert (kept / "run-abc-1.log").is_file()


def test_the_cache_size_is_shared_between_builds_ccache_and_logs() -> None:
    shares = split_cache_size(100 * 1024**3)
    assert sum(shares) == 100 * 1024**3
    assert shares.builds > shares.ccache > shares.logs > 0
