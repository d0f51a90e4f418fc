"""proc.run's hooks: `watch` ends a wait early as a deadlock, `on_hang` sees the group alive."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from finbisect.runs import proc

pytestmark = pytest.mark.usefixtures("leftovers")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_watch_reason_ends_the_wait_as_a_deadlock(tmp_path: Path) -> None:
    calls: list[int] = []

    def watch(pid: int) -> str | None:
        calls.append(pid)
        return "deadlocked: all 1 threads blocked for 1.0 s" if len(calls) >= 3 else None

    result = proc.run(SLEEPER, cwd=tmp_path, timeout=60, log_path=tmp_path / "log", watch=watch)
    assert (result.timed_out, result.deadlocked) == (True, True)
    assert result.hang_reason == "deadlocked: all 1 threads blocked for 1.0 s"
    assert result.returncode is None
    assert len(calls) == 3
    assert "finbisect: deadlocked: all 1 threads blocked for 1.0 s; process group killed" in (
        result.output
    )


def test_a_timeout_says_the_configured_timeout(tmp_path: Path) -> None:
    result = proc.run(
        SLEEPER, cwd=tmp_path, timeout=1, log_path=tmp_path / "log", grace=0.5, watch=lambda _: None
    )
    assert (result.timed_out, result.deadlocked) == (True, False)
    assert result.hang_reason == "no exit within 1 s"
    assert "finbisect: timed out after 1 s; process group killed" in result.output


def test_on_hang_runs_while_the_group_is_alive_and_its_text_is_logged(tmp_path: Path) -> None:
    seen: list[bool] = []

    def on_hang(pid: int) -> str:
        seen.append(Path(f"/proc/{pid}").exists())
        return "STACKS OF THE HUNG GROUP\n"

    result = proc.run(
        SLEEPER, cwd=tmp_path, timeout=1, log_path=tmp_path / "log", grace=0.5, on_hang=on_hang
    )
    assert seen == [True]
    assert result.output.index("STACKS OF THE HUNG GROUP") < result.output.index("timed out")


def test_no_hook_runs_for_a_run_that_exits(tmp_path: Path) -> None:
    def on_hang(pid: int) -> str:
        raise AssertionError("not a hang")

    result = proc.run(
        [sys.executable, "-c", "pass"],
        cwd=tmp_path,
        timeout=30,
        log_path=tmp_path / "log",
        watch=lambda _: None,
        on_hang=on_hang,
    )
    assert (result.returncode, result.timed_out, result.hang_reason) == (0, False, "")
