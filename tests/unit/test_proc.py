"""The process runner: timeouts kill whole process groups, output is bounded."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from finbisect.runs import proc

# Forks a child that forks a grandchild; all three sleep, each writing its pid.
FORKER = """
import os, sys, time
pids = sys.argv[1]
for _ in range(2):
    if os.fork() != 0:
        break
with open(pids, "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(1000)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_exit_status_and_output(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = proc.run(
        [sys.executable, "-c", code], cwd=tmp_path, timeout=30, log_path=tmp_path / "log"
    )
    assert (result.returncode, result.signal, result.timed_out) == (3, None, False)
    assert "out\n" in result.output
    assert "err\n" in result.output
    assert result.output.startswith("+ ")


def test_signal_is_reported(tmp_path: Path) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"
    result = proc.run(
        [sys.executable, "-c", code], cwd=tmp_path, timeout=30, log_path=tmp_path / "log"
    )
    assert result.returncode is None
    assert result.signal == signal.SIGABRT


def test_timeout_kills_children_and_grandchildren(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    started = time.monotonic()
    result = proc.run(
        [sys.executable, str(script), str(pids_file)],
        cwd=tmp_path,
        timeout=1.5,
        log_path=tmp_path / "log",
        grace=0.5,
    )
    assert result.timed_out
    assert time.monotonic() - started < 10
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 3
    assert not [pid for pid in pids if _alive(pid)]
    assert "timed out" in result.output


def test_lingering_daemon_children_are_killed_after_a_normal_exit(tmp_path: Path) -> None:
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(1000)\n"
        "time.sleep(0.3)\n"
    )
    pid_file = tmp_path / "pid"
    result = proc.run(
        [sys.executable, "-c", code, str(pid_file)],
        cwd=tmp_path,
        timeout=30,
        log_path=tmp_path / "log",
        grace=0.5,
    )
    assert result.returncode == 0
    assert not _alive(int(pid_file.read_text()))


def test_missing_program_is_a_result_not_an_exception(tmp_path: Path) -> None:
    result = proc.run([str(tmp_path / "nope")], cwd=tmp_path, timeout=5, log_path=tmp_path / "log")
    assert result.returncode == 127
    assert "cannot run" in result.output


def test_huge_output_is_bounded_in_memory_and_on_disk(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(200000): print('x' * 20)\nprint('LAST', file=sys.stderr)"
    result = proc.run(
        [sys.executable, "-c", code], cwd=tmp_path, timeout=60, log_path=tmp_path / "log"
    )
    assert len(result.output) < 400 * 1024
    assert "LAST" in result.output
    assert "output cut" in result.output
    # The log keeps its head and tail (a repro writing 200 MB a run must not fill the
    # disk) and says how much it lost: 200000 lines of 21 bytes and the header, minus
    # what is kept.
    log = (tmp_path / "log").read_text()
    assert len(log) < 400 * 1024
    assert log.startswith("+ ")
    assert log.rstrip().endswith("LAST")
    cut = int(log.split("[finbisect: ", 1)[1].split(" bytes", 1)[0])
    assert cut > 3_500_000


def test_shell_command_is_logged_as_written(tmp_path: Path) -> None:
    result = proc.run_shell("echo hi && exit 4", cwd=tmp_path, timeout=5, log_path=tmp_path / "l")
    assert result.returncode == 4
    assert result.output.splitlines()[:2] == ["+ echo hi && exit 4", "hi"]
