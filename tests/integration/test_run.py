"""`finbisect run` end to end on generated minipy histories: real git, make, processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from finbisect.testing.histories import linear_history, merge_history
from tests.conftest import GIL_MATCH, Hunt, invoke


def _json(tmp_path: Path) -> dict[str, object]:
    import json

    data: dict[str, object] = json.loads((tmp_path / "out.json").read_text())
    return data


def _culprit_sha(tmp_path: Path) -> object:
    culprit = _json(tmp_path)["culprit"]
    assert isinstance(culprit, dict)
    return culprit["sha"]


def test_crash_regression(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=40, culprit=23)
    result = hunt(history.path, history.good, history.bad, "--runs", "1")
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert _culprit_sha(tmp_path) == history.culprit
    assert data["version"] == 1
    assert data["hunt"] == "regression"
    assert (data["good"], data["bad"]) == (history.good, history.bad)
    assert data["confidence"] == 1.0
    assert data["candidates"] == []
    steps = data["steps"]
    assert isinstance(steps, list)
    assert [s["verdict"] for s in steps[:2]] == ["good", "bad"]
    assert data["builds"] == len(steps) <= 2 + 6
    assert data["runs"] == len(steps)
    assert f"introduced by {history.culprit}" in result.stdout
    assert "gh-1023" in result.stdout  # the culprit's issue reference, linked


def test_fix_hunt(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=20, culprit=6, fix=True)
    result = hunt(history.path, history.good, history.bad)
    assert result.exit_code == 0, result.stderr
    assert _json(tmp_path)["hunt"] == "fix"
    assert _culprit_sha(tmp_path) == history.culprit
    assert f"fixed by {history.culprit}" in result.stdout


def test_error_symptom(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=16, culprit=9, symptom="error")
    result = hunt(history.path, history.good, history.bad, "--symptom", "error")
    assert result.exit_code == 0, result.stderr
    assert _culprit_sha(tmp_path) == history.culprit


def test_error_is_not_a_symptom_by_default(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=6, culprit=3, symptom="error")
    result = hunt(history.path, history.good, history.bad)
    assert result.exit_code == 4
    assert "--bad" in result.stderr
    assert "only unrelated failures" in result.stderr


def _processes_running_from(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = str((entry / "exe").readlink())
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if exe.startswith(str(directory)) and state != "Z":
            found.append(int(entry.name))
    return found


def test_hang_with_grandchildren_leaves_nothing_running(
    tmp_path: Path, hunt: Hunt, cache: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=8, culprit=5, symptom="hang")
    result = hunt(history.path, history.good, history.bad, "--timeout", "3", "--runs", "1")
    assert result.exit_code == 0, result.stderr
    assert _culprit_sha(tmp_path) == history.culprit
    steps = _json(tmp_path)["steps"]
    assert isinstance(steps, list)
    assert any(s["outcomes"]["hang"] == 1 for s in steps)
    assert _processes_running_from(cache) == []


def test_unbuildable_revisions_are_skipped(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=30, culprit=20, broken=range(10, 19))
    result = hunt(history.path, history.good, history.bad)
    assert result.exit_code == 0, result.stderr
    assert _culprit_sha(tmp_path) == history.culprit
    steps = _json(tmp_path)["steps"]
    assert isinstance(steps, list)
    skipped = [s for s in steps if s["verdict"] == "skip"]
    assert skipped
    assert all("build failed" in s["reason"] for s in skipped)
    assert all(s["runs"] == 0 for s in skipped)


@pytest.mark.parametrize("classic", [True, False])
def test_skips_around_the_culprit_give_an_ambiguous_answer(
    tmp_path: Path, hunt: Hunt, classic: bool
) -> None:
    history = linear_history(tmp_path / "repo", commits=16, culprit=8, broken={7, 8})
    result = hunt(history.path, history.good, history.bad, *(["--runs", "1"] if classic else []))
    assert result.exit_code == 5
    data = _json(tmp_path)
    assert data["culprit"] is None
    expected = [history.shas[7], history.shas[8], history.shas[9]]
    candidates = data["candidates"]
    assert isinstance(candidates, list)
    assert sorted(c["sha"] for c in candidates) == sorted(expected)
    if classic:  # git bisect's ambiguity has no probabilities
        assert all(c["probability"] is None for c in candidates)
    else:  # the noisy search spreads the mass over what it cannot tell apart
        assert sum(c["probability"] for c in candidates) >= 0.95
    assert "inconclusive" in result.stdout


def test_match_keeps_unrelated_crashes_from_steering(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=20, culprit=15, unrelated=range(2, 14))
    wrong = hunt(history.path, history.good, history.bad)
    assert wrong.exit_code == 0
    assert _culprit_sha(tmp_path) == history.shas[2]  # a segfault looks like the crash

    right = hunt(history.path, history.good, history.bad, "--match", GIL_MATCH)
    assert right.exit_code == 0, right.stderr
    assert _culprit_sha(tmp_path) == history.culprit
    steps = _json(tmp_path)["steps"]
    assert isinstance(steps, list)
    assert any(s["outcomes"]["unrelated"] for s in steps)


@pytest.mark.parametrize("first_parent", [False, True])
def test_merged_side_branch(tmp_path: Path, hunt: Hunt, first_parent: bool) -> None:
    history = merge_history(tmp_path / "repo")
    extra = ["--first-parent"] if first_parent else []
    result = hunt(history.path, history.good, history.bad, *extra)
    assert result.exit_code == 0, result.stderr
    expected = history.first_parent_culprit if first_parent else history.culprit
    assert _culprit_sha(tmp_path) == expected
    assert history.culprit != history.first_parent_culprit


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(root.rglob("*"))
    }


def test_users_repository_is_byte_identical_afterwards(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=12, culprit=7)
    repo = history.path

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("checkout", "-q", "-b", "work")
    (repo / "Doc" / "notes.txt").write_text("stashed edit\n")
    git("stash", "-q")
    (repo / "Misc" / "NEWS").write_text("uncommitted edit\n")
    (repo / "untracked.txt").write_text("mine\n")
    git("add", "Misc/NEWS")
    (repo / "Misc" / "NEWS").write_text("uncommitted edit, unstaged part\n")
    before = _snapshot(repo)

    result = hunt(repo, history.good, "work")
    assert result.exit_code == 0, result.stderr
    assert _culprit_sha(tmp_path) == history.culprit
    assert _snapshot(repo) == before


def test_the_lock_refuses_a_second_hunt(tmp_path: Path, hunt: Hunt, cache: Path) -> None:
    import fcntl

    history = linear_history(tmp_path / "repo", commits=4, culprit=2)
    first = hunt(history.path, history.good, history.bad)
    assert first.exit_code == 0
    (lock_path,) = cache.glob("repos/*/lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        second = hunt(history.path, history.good, history.bad)
    assert second.exit_code == 2
    assert "another finbisect hunt" in second.stderr


def test_a_second_hunt_reuses_the_clone(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=10, culprit=4)
    assert hunt(history.path, history.good, history.bad).exit_code == 0
    # New commits in the user's repository are fetched at the next hunt.
    subprocess.run(
        ["git", "-C", str(history.path), "commit", "-q", "--allow-empty", "-m", "later"],
        check=True,
        env={**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b",
             "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"},
    )  # fmt: skip
    result = hunt(history.path, history.good, "HEAD")
    assert result.exit_code == 0, result.stderr
    assert _culprit_sha(tmp_path) == history.culprit


def test_the_installed_command_runs_the_demo(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "finbisect"
    out = tmp_path / "demo.json"
    done = subprocess.run(
        [str(exe), "demo", "--dir", str(tmp_path / "demo"), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "introduced by" in done.stdout
    assert "\x1b[" not in done.stdout  # piped: plain text
    import json

    data = json.loads(out.read_text())
    assert "bpo-9901" in data["culprit"]["subject"]
    assert {"ref": "bpo-9901", "url": "https://bugs.python.org/issue9901"} in data["culprit"][
        "refs"
    ]


def test_demo_without_a_directory_leaves_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = invoke("demo")
    assert result.exit_code == 0, result.stderr
    assert "introduced by" in result.stdout
    assert list(tmp_path.iterdir()) == []
    assert "removed" in result.stderr.splitlines()[-1]
    assert "finbisect demo --dir DIR" in result.stderr


def test_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    result = invoke("demo", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_kills_children_and_keeps_the_cache_usable(
    tmp_path: Path, repro: Path, cache: Path, sig: signal.Signals
) -> None:
    history = linear_history(tmp_path / "repo", commits=6, culprit=1, symptom="hang")
    exe = Path(sys.executable).parent / "finbisect"
    argv = [
        str(exe), "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", "make", "--cache-dir", str(cache),
    ]  # fmt: skip
    child = subprocess.Popen(
        [*argv, "--timeout", "60"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not _processes_running_from(cache) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the hanging repro runs
    assert _processes_running_from(cache)
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130
    assert "Run again: finbisect run" in stderr
    assert "Traceback" not in stderr
    assert _processes_running_from(cache) == []

    again = subprocess.run(
        [*argv, "--timeout", "1"], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert history.culprit in again.stdout
