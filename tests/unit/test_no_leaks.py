"""The conftest guard against leftover processes finds what a test leaves running.

Each test here starts a process the way a leak happens, checks that the guard's
scan sees it, then ends it itself (otherwise the guard would fail this test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TEST_MARK_ENV, _started_by_this_test

# Forks; the child calls setsid() and sleeps; the parent exits at once, so the
# sleeper is reparented to init: no longer a descendant of pytest.
ESCAPE = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    open(sys.argv[1] + ".new", "w").write(str(os.getpid()))
    os.rename(sys.argv[1] + ".new", sys.argv[1])
    time.sleep(1000)
"""


def _mark() -> bytes:
    return f"{TEST_MARK_ENV}={os.environ[TEST_MARK_ENV]}".encode()


def _wait_for(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(path.read_text())


def _end(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _started_by_this_test(_mark(), set()).get(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_mark_is_in_the_environment_children_inherit() -> None:
    assert os.environ[TEST_MARK_ENV].startswith(f"{os.getpid()}-")


def test_a_setsid_orphan_is_found_by_its_mark(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    subprocess.run([sys.executable, "-c", ESCAPE, str(pid_file)], check=True)
    pid = _wait_for(pid_file)
    try:
        found = _started_by_this_test(_mark(), set())
        assert pid in found
        assert found[pid].sid == pid  # its own session, outside every group we know
        assert found[pid].ppid != os.getpid()
    finally:
        _end(pid)
    assert pid not in _started_by_this_test(_mark(), set())


def test_a_child_without_the_mark_is_found_as_a_descendant() -> None:
    child = subprocess.Popen(["sleep", "1000"], env={"PATH": os.environ["PATH"]})
    try:
        found = _started_by_this_test(_mark(), set())
        assert child.pid in found
        assert found[child.pid].command == "sleep 1000"
        assert child.pid not in _started_by_this_test(_mark(), {child.pid})  # it was there before
    finally:
        child.kill()
        child.wait()
    assert child.pid not in _started_by_this_test(_mark(), set())


def test_another_marks_processes_are_not_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    env = {**os.environ, TEST_MARK_ENV: "someone-else"}
    subprocess.run([sys.executable, "-c", ESCAPE, str(pid_file)], check=True, env=env)
    pid = _wait_for(pid_file)
    try:
        assert pid not in _started_by_this_test(_mark(), set())
    finally:
        os.kill(pid, signal.SIGKILL)
