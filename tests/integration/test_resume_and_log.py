"""Resume after an interruption; `finbisect runs`; `finbisect log` for git bisect replay."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finbisect.testing.histories import linear_history
from tests.conftest import Hunt, invoke


def test_an_interrupted_hunt_resumes_where_it_stopped(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=40, culprit=9, symptom="hang")
    out = tmp_path / "out.json"
    argv = [
        str(Path(sys.executable).parent / "finbisect"), "run", str(repro),
        "--repo", str(history.path), "--good", history.good, "--bad", history.bad,
        "--build-cmd", "make", "--cache-dir", str(cache), "--runs", "1",
        "--timeout", "1", "--json", str(out),
    ]  # fmt: skip
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    state: dict[str, object] = {}
    while time.monotonic() < deadline:  # interrupt once three visits are saved
        states = list(cache.glob("repos/*/hunts/*/state.json"))
        if states:
            try:
                state = json.loads(states[0].read_text())
            except ValueError:
                continue
            visits = state["visits"]
            assert isinstance(visits, list)
            if len(visits) >= 3:
                break
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=30)
    assert child.returncode == 130
    hunt_dir = next(cache.glob("repos/*/hunts/*"))
    saved = json.loads((hunt_dir / "state.json").read_text())
    assert saved["status"] == "interrupted"
    done_before = [v["step"]["sha"] for v in saved["visits"]]
    # The logs of finished visits (the one interrupted mid-run is redone).
    logs_before = {
        p.name: p.stat().st_mtime_ns
        for sha in done_before
        for p in hunt_dir.glob(f"run-{sha[:12]}-*.log")
    }
    assert len(logs_before) == len(done_before)

    again = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert again.returncode == 0, again.stderr
    assert f"resuming interrupted hunt {hunt_dir.name}" in again.stderr
    data = json.loads(out.read_text())
    assert data["culprit"]["sha"] == history.culprit
    assert [s["sha"] for s in data["steps"]][: len(done_before)] == done_before
    # Finished steps were neither run nor built again.
    logs_after = {p.name: p.stat().st_mtime_ns for p in hunt_dir.glob("run-*.log")}
    assert {k: logs_after[k] for k in logs_before} == logs_before
    assert len(logs_after) == data["runs"]
    assert data["builds"] + data["cached_builds"] == len(data["steps"])  # each built once
    assert json.loads((hunt_dir / "state.json").read_text())["status"] == "finished"

    runs = invoke("runs", "--cache-dir", str(cache))
    assert hunt_dir.name in runs.stdout
    assert f"introduced by {history.culprit}" in runs.stdout


def test_a_finished_hunt_run_again_starts_afresh(tmp_path: Path, hunt: Hunt, cache: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=10, culprit=4)
    assert hunt(history.path, history.good, history.bad, "--runs", "1").exit_code == 0
    again = hunt(history.path, history.good, history.bad, "--runs", "1")
    assert again.exit_code == 0
    assert "resuming" not in again.stderr
    assert len(list(cache.glob("repos/*/hunts/*/state.json"))) == 2
    assert json.loads((tmp_path / "out.json").read_text())["builds"] == 0


def test_old_hunts_lose_their_logs_beyond_the_cache_size_but_stay_listed(
    tmp_path: Path, hunt: Hunt, cache: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=12, culprit=5)
    # --cache-size 1M leaves the logs 51 KiB: less than two of these hunts' logs.
    for _ in range(3):
        result = hunt(history.path, history.good, history.bad, "--runs", "2", "--cache-size", "1M")
        assert result.exit_code == 0, result.stderr
    oldest, middle, newest = sorted(cache.glob("repos/*/hunts/*"))
    for pruned in (oldest, middle):
        assert sorted(p.name for p in pruned.iterdir()) == ["logs-pruned", "state.json"]
    assert list(newest.glob("run-*.log"))  # the hunt just finished keeps its logs
    assert "logs" in invoke("cache", "list", "--cache-dir", str(cache)).stdout
    runs = invoke("runs", "--cache-dir", str(cache))
    assert all(h.name in runs.stdout for h in (oldest, middle, newest))
    replay = invoke("log", oldest.name, "--cache-dir", str(cache))
    assert replay.exit_code == 0
    assert "git bisect bad" in replay.stdout


@pytest.mark.parametrize(("fix", "runs"), [(False, ["--runs", "1"]), (True, []), (False, [])])
def test_git_bisect_replay_accepts_the_log(
    tmp_path: Path, hunt: Hunt, cache: Path, fix: bool, runs: list[str]
) -> None:
    history = linear_history(
        tmp_path / "repo", commits=30, culprit=17, fix=fix, crash_percent=100 if runs else 50
    )
    result = hunt(history.path, history.good, history.bad, "--confidence", "0.999", *runs)
    assert result.exit_code == 0, result.stderr
    log = invoke("log", "--cache-dir", str(cache))
    assert log.exit_code == 0
    (tmp_path / "bisect.log").write_text(log.stdout)
    clone = tmp_path / "replay"
    subprocess.run(["git", "clone", "-q", str(history.path), str(clone)], check=True)
    replay = subprocess.run(
        ["git", "-C", str(clone), "bisect", "replay", str(tmp_path / "bisect.log")],
        capture_output=True,
        text=True,
        check=True,
    )
    term = "fixed" if fix else "bad"
    found = re.search(rf"^([0-9a-f]{{40}}) is the first {term} commit", replay.stdout, re.M)
    assert found is not None, replay.stdout
    assert found.group(1) == history.culprit


def test_the_replay_ends_on_the_culprit_whatever_order_the_visits_came_in(
    tmp_path: Path, hunt: Hunt, cache: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=30, culprit=17)
    assert hunt(history.path, history.good, history.bad, "--runs", "1").exit_code == 0
    # A noisy search may come back to a revision after the culprit once it has marked
    # the culprit: move the bad end's visit last, as such a hunt would have it.
    (path,) = cache.glob("repos/*/hunts/*/state.json")
    state = json.loads(path.read_text())
    is_bad_end = [v["step"]["sha"] == history.bad for v in state["visits"]]
    state["visits"] = [v for v, end in zip(state["visits"], is_bad_end, strict=True) if not end] + [
        v for v, end in zip(state["visits"], is_bad_end, strict=True) if end
    ]
    path.write_text(json.dumps(state))
    (tmp_path / "bisect.log").write_text(invoke("log", "--cache-dir", str(cache)).stdout)
    clone = tmp_path / "replay"
    subprocess.run(["git", "clone", "-q", str(history.path), str(clone)], check=True)
    replay = subprocess.run(
        ["git", "-C", str(clone), "bisect", "replay", str(tmp_path / "bisect.log")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"{history.culprit} is the first bad commit" in replay.stdout


def test_log_of_an_unknown_hunt(tmp_path: Path) -> None:
    result = invoke("log", "nope", "--cache-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "no hunts recorded" in result.stderr


def _cut_short(cache: Path, keep: int) -> list[str]:
    """Make the newest saved hunt look interrupted after `keep` visits; their revisions."""
    (path,) = cache.glob("repos/*/hunts/*/state.json")
    state = json.loads(path.read_text())
    state["status"] = "interrupted"
    state["visits"] = state["visits"][:keep]
    state["culprit"] = None
    path.write_text(json.dumps(state))
    return list(dict.fromkeys(visit["step"]["sha"] for visit in state["visits"]))


@pytest.mark.parametrize(
    ("kind", "extra"),
    # A stricter confidence than the default keeps this test's own error rate negligible.
    [("noisy", ["--confidence", "0.999"]), ("timing", ["--symptom", "slow"])],
)
def test_every_search_resumes_from_saved_visits(
    tmp_path: Path, hunt: Hunt, cache: Path, kind: str, extra: list[str]
) -> None:
    if kind == "timing":
        history = linear_history(
            tmp_path / "repo", commits=10, culprit=6, symptom="slow", slow_ms=120, jitter_ms=5
        )
    else:
        history = linear_history(tmp_path / "repo", commits=30, culprit=19, crash_percent=50)
    first = hunt(history.path, history.good, history.bad, *extra)
    assert first.exit_code == 0, first.stderr
    built_before = {s["sha"] for s in json.loads((tmp_path / "out.json").read_text())["steps"]}
    saved = _cut_short(cache, keep=3)
    again = hunt(history.path, history.good, history.bad, *extra)
    assert again.exit_code == 0, again.stderr
    assert "resuming interrupted hunt" in again.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["culprit"]["sha"] == history.culprit
    steps = data["steps"]
    assert [s["sha"] for s in steps][: len(saved)] == saved  # the saved visits, not redone
    # The continuation's runs are random, so it may go where the first hunt did not;
    # but a revision the first hunt built is never compiled again.
    later = steps[len(saved) :]
    assert later, "a continuation after three visits"
    assert all(s["cached"] for s in later if s["sha"] in built_before)
    # (A timing hunt's ends were compiled for calibration, outside any saved visit.)
    assert data["builds"] <= sum(1 for s in steps if not s["cached"])
