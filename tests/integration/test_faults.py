"""Faults, injected for real: hostile repros, signals at any moment, SIGKILL and a rerun,
a full disk, damaged caches and clones. Each checks the documented exit code, no
traceback, nothing left running (the autouse leak check, and the run mark), nothing of
the user's changed, and that the next hunt is right."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finbisect.runs import proc, reaper
from finbisect.testing.histories import GeneratedHistory, linear_history
from tests.conftest import invoke

FINBISECT = str(Path(sys.executable).parent / "finbisect")
ESCAPEE = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n"
HANG = "import time\ntime.sleep(3600)\n"


def _wrapper_build(tmp_path: Path) -> str:
    """A --build-cmd whose ./python is the real Python running the tests (so hostile
    Python repros really run)."""
    return f"printf '#!/bin/sh\\nexec {sys.executable} \"$@\"\\n' > python && chmod +x python"


def _refs(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@pytest.fixture
def history(tmp_path: Path) -> Iterator[GeneratedHistory]:
    history = linear_history(tmp_path / "repo", commits=4, culprit=2)
    before = _refs(history.path)
    yield history
    assert _refs(history.path) == before  # nothing of the user's changed


def test_a_setsid_escapee_is_killed_with_its_run(tmp_path: Path) -> None:
    repro = tmp_path / "escape.py"
    repro.write_text(ESCAPEE)
    with reaper.owned_by(f"test-{tmp_path.name}"):
        result = proc.run(
            [sys.executable, str(repro)], cwd=tmp_path, timeout=5, log_path=tmp_path / "log"
        )
    assert result.returncode == 0
    assert reaper.marked(f"test-{tmp_path.name}#") == []


def test_a_hunt_with_an_escaping_repro_leaves_nothing(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    repro = tmp_path / "escape.py"
    repro.write_text(ESCAPEE)
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", _wrapper_build(tmp_path), "--runs", "1",
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert result.exit_code == 4  # every run is clean: the bad end does not verify
    _no_traceback(result.stderr)
    assert reaper.marked(str(tmp_path / "cache")) == []


@pytest.mark.parametrize("iteration", range(30))
def test_an_interrupt_at_any_moment_leaves_nothing_running(tmp_path: Path, iteration: int) -> None:
    """Ctrl-C at a random moment of a run of a hanging, TERM-ignoring repro: during Popen,
    the wait, the timeout's kill grace."""
    repro = tmp_path / "stubborn.py"
    repro.write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + HANG)
    owner = f"test-{tmp_path.name}"
    delay = random.Random(iteration).uniform(0.0, 0.6)
    signal.setitimer(signal.ITIMER_REAL, delay)
    previous = signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        with reaper.owned_by(owner), pytest.raises(KeyboardInterrupt):
            _run_then_wait(repro, tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert reaper.marked(f"{owner}#") == []


def _run_then_wait(repro: Path, tmp_path: Path) -> None:
    proc.run(
        [sys.executable, str(repro)], cwd=tmp_path, timeout=0.3, grace=0.2,
        log_path=tmp_path / "log",
    )  # fmt: skip
    time.sleep(5)  # the run ended before the interrupt: let it land here


def _hunt_argv(
    tmp_path: Path, history: GeneratedHistory, repro: Path, timeout: str = "600"
) -> list[str]:
    return [
        FINBISECT, "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", _wrapper_build(tmp_path), "--runs", "1",
        "--timeout", timeout, "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's parent may reap it a little later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    # A marked process may end between being listed and being read.
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _wait_for_a_run(cache: Path, *, seconds: float = 60) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [pid for pid in reaper.marked(str(cache)) if "hang.py" in _cmdline(pid)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no run started")


def test_after_a_sigkill_the_next_finbisect_ends_what_was_left(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    repro = tmp_path / "hang.py"
    repro.write_text(HANG)
    argv = _hunt_argv(tmp_path, history, repro)
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    orphans = _wait_for_a_run(tmp_path / "cache")
    child.kill()  # no chance to clean up
    child.wait()
    assert all(_running(pid) for pid in orphans)  # orphaned, still running
    again = subprocess.run(
        _hunt_argv(tmp_path, history, repro, timeout="0.5"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    _no_traceback(again.stderr)
    assert "processes left running by a finbisect that was killed" in again.stderr
    assert not any(_running(pid) for pid in orphans)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_polite_signal_ends_the_hunt_and_its_runs(
    tmp_path: Path, history: GeneratedHistory, sig: signal.Signals
) -> None:
    repro = tmp_path / "hang.py"
    repro.write_text(HANG)
    child = subprocess.Popen(
        _hunt_argv(tmp_path, history, repro), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    runs = _wait_for_a_run(tmp_path / "cache")
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130
    _no_traceback(stderr)
    assert "Run again: finbisect run" in stderr
    assert not any(_running(pid) for pid in runs)


def test_a_full_disk_is_said_and_nothing_is_cached(
    tmp_path: Path, history: GeneratedHistory, repro: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
            capture_output=True,
            check=False,
        ).returncode
    ):
        pytest.skip("needs root and tmpfs to make a full filesystem")
    try:
        big = "head -c 3000000 /dev/zero > filler.bin && make"  # a build tree that cannot be stored
        args = [
            "run", str(repro), "--repo", str(history.path), "--good", history.good,
            "--bad", history.bad, "--build-cmd", big, "--runs", "1",
            "--cache-dir", str(small / "cache"),
        ]  # fmt: skip
        full = invoke(*args)
        assert full.exit_code == 8, full.stderr
        assert "No space left on device" in full.stderr or "no space left" in full.stderr
        _no_traceback(full.stderr)
        assert not list((small / "cache").glob("builds/*/*/build.json"))
        assert not list((small / "cache").glob("builds/*/.*.tmp"))  # no half copy left
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_damaged_clone_is_made_again(
    tmp_path: Path, history: GeneratedHistory, repro: Path
) -> None:
    args = [
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", "make", "--runs", "1",
        "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "out.json"),
    ]  # fmt: skip
    assert invoke(*args).exit_code == 0
    (head,) = (tmp_path / "cache").glob("repos/*/clone/.git/HEAD")
    head.unlink()
    for refs in (tmp_path / "cache").glob("repos/*/clone/.git/refs"):
        refs.rename(refs.with_name("refs-gone"))
    again = invoke(*args)
    assert again.exit_code == 0, again.stderr
    assert json.loads((tmp_path / "out.json").read_text())["culprit"]["sha"] == history.culprit


def test_a_repro_that_floods_its_output_gets_bounded_logs_and_lines(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    repro = tmp_path / "flood.py"
    repro.write_text(
        "import sys\nsys.stdout.write('x' * 262144 + '\\n')\n"
        "for _ in range(800):\n    sys.stdout.write('y' * 65536 + '\\n')\nsys.exit(3)\n"
    )
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", _wrapper_build(tmp_path), "--runs", "1",
        "--symptom", "error", "--cache-dir", str(tmp_path / "cache"),
        "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    _no_traceback(result.stderr)
    assert max(len(line) for line in result.stderr.splitlines()) < 1000
    logs = list((tmp_path / "cache").glob("repos/*/hunts/*/run-*.log"))
    assert logs
    assert all(log.stat().st_size < 1024 * 1024 for log in logs)  # 50 MB each, cut


def test_cache_clear_spares_the_builds_of_a_running_hunt(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    repro = tmp_path / "hang.py"
    repro.write_text(HANG)
    child = subprocess.Popen(
        _hunt_argv(tmp_path, history, repro), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_a_run(tmp_path / "cache")
        cleared = invoke("cache", "clear", "--cache-dir", str(tmp_path / "cache"))
        assert cleared.exit_code == 0
        assert list((tmp_path / "cache").glob("builds/*/*/build.json"))  # still there
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
    cleared = invoke("cache", "clear", "--cache-dir", str(tmp_path / "cache"))
    assert not list((tmp_path / "cache").glob("builds/*/*/build.json"))  # now it may go
    assert cleared.exit_code == 0
