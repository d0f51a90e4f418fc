"""Background children (building ahead): the lowest CPU priority, killed on cancel."""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from pathlib import Path

import pytest

from finbisect.runs import proc
from tests.processes import gone

_NICENESS = "import os; print('niceness', os.nice(0))"


def _run(tmp_path: Path, code: str, *, timeout: float = 30) -> proc.ProcResult:
    return proc.run(
        [sys.executable, "-c", code], cwd=tmp_path, timeout=timeout, log_path=tmp_path / "log"
    )


def test_a_background_child_and_its_children_run_at_the_lowest_priority(tmp_path: Path) -> None:
    grandchild = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {_NICENESS!r}])"
    with proc.in_background(threading.Event()):
        result = _run(tmp_path, grandchild)
    assert result.ok, result.output
    assert "niceness 19" in result.output
    # The log names the command the caller asked for, not the priority wrapper.
    assert result.output.splitlines()[0] == f"+ {shlex.join([sys.executable, '-c', grandchild])}"


def test_outside_the_block_children_keep_our_priority(tmp_path: Path) -> None:
    with proc.in_background(threading.Event()):
        pass
    ours = os.nice(0)
    result = _run(tmp_path, _NICENESS)
    assert f"niceness {ours}" in result.output


def test_only_the_thread_in_the_block_is_in_the_background(tmp_path: Path) -> None:
    ours = os.nice(0)
    if ours >= 19:
        pytest.skip("the tests run at the lowest priority already: nothing to tell apart")
    results: list[proc.ProcResult] = []
    inside = threading.Event()
    done = threading.Event()

    def background() -> None:
        with proc.in_background(threading.Event()):
            inside.set()
            done.wait(30)

    thread = threading.Thread(target=background)
    thread.start()
    inside.wait(30)
    try:
        results.append(_run(tmp_path, _NICENESS))
    finally:
        done.set()
        thread.join()
    assert f"niceness {ours}" in results[0].output  # ours, whatever the suite runs at


def test_cancel_kills_the_child_and_interrupts_only_that_thread(tmp_path: Path) -> None:
    cancel = threading.Event()
    raised: list[BaseException] = []
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"

    def background() -> None:
        with proc.in_background(cancel):
            try:
                _run(tmp_path, code, timeout=60)
            except KeyboardInterrupt as exc:
                raised.append(exc)

    thread = threading.Thread(target=background)
    started = time.monotonic()
    thread.start()
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() - started < 30, "the child never started"
        time.sleep(0.02)
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()
    assert len(raised) == 1
    pid = int(pid_file.read_text())
    assert gone(pid)


def test_a_missing_program_in_the_background_is_a_result(tmp_path: Path) -> None:
    with proc.in_background(threading.Event()):
        result = proc.run(
            ["/nonexistent/finbisect-test"], cwd=tmp_path, timeout=30, log_path=tmp_path / "log"
        )
    assert result.returncode == 127
    assert "cannot run /nonexistent/finbisect-test" in result.output


@pytest.mark.parametrize("cancelled", [False, True])
def test_the_block_leaves_nothing_behind(tmp_path: Path, cancelled: bool) -> None:
    cancel = threading.Event()
    if cancelled:
        cancel.set()
    with proc.in_background(cancel):
        if cancelled:
            with pytest.raises(KeyboardInterrupt):
                _run(tmp_path, "import time; time.sleep(60)", timeout=60)
    assert _run(tmp_path, "print('after')").ok
