"""proc.capture: output in memory, whole; timeouts and interrupts kill the whole group."""

from __future__ import annotations

import _thread
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from finbisect.runs import capture as proc

# Forks a child that forks a grandchild; all three sleep, each writing its pid.
FORKER = """
import os, sys, time
pids = sys.argv[1]
for _ in range(2):
    if os.fork() != 0:
        break
with open(pids, "a") as f:
    f.write(f"{os.getpid()}\\n")
    f.flush()
time.sleep(1000)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _pids(path: Path, count: int) -> list[int]:
    """The pids FORKER wrote, once all `count` processes have written theirs."""
    while len(pids := path.read_text().split() if path.exists() else []) < count:
        threading.Event().wait(0.02)
    return [int(p) for p in pids]


def test_stdout_and_stderr_apart_and_the_exit_status(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err 1\\nerr 2\\n', file=sys.stderr); sys.exit(3)"
    result = proc.capture([sys.executable, "-c", code], cwd=tmp_path, timeout=30)
    assert (result.returncode, result.signal, result.timed_out) == (3, None, False)
    assert not result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err 1\nerr 2\n\n"
    assert result.last_error_line == "err 2"
    assert result.argv == (sys.executable, "-c", code)


def test_huge_stdout_comes_back_whole_and_stderr_keeps_its_end(tmp_path: Path) -> None:
    # As much as a rev-list --parents of 100,000 commits (~8 MB), while stderr floods too.
    code = (
        "import sys\n"
        "for i in range(100_000):\n"
        "    sys.stdout.write(f'{i:040x} {i:040x}\\n')\n"
        "    if i % 10 == 0: sys.stderr.write('noise ' * 20 + '\\n')\n"
        "sys.stderr.write('the reason\\n')\n"
    )
    result = proc.capture([sys.executable, "-c", code], cwd=tmp_path, timeout=120)
    assert result.ok
    lines = result.stdout.splitlines()
    assert len(lines) == 100_000
    assert lines[-1] == f"{99_999:040x} {99_999:040x}"
    assert len(result.stderr) <= 64 * 1024
    assert result.last_error_line == "the reason"


def test_input_is_fed_while_output_is_read(tmp_path: Path) -> None:
    # More than a pipe buffer each way: writing all input first would deadlock.
    data = "".join(f"line {i}\n" for i in range(300_000))
    result = proc.capture(["cat"], cwd=tmp_path, timeout=60, input=data)
    assert result.ok
    assert result.stdout == data


def test_no_input_means_stdin_is_closed(tmp_path: Path) -> None:
    result = proc.capture(["cat"], cwd=tmp_path, timeout=30)
    assert result.ok
    assert result.stdout == ""


def test_timeout_kills_children_and_grandchildren(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    result = proc.capture(
        [sys.executable, str(script), str(pids_file)], cwd=tmp_path, timeout=1.5, grace=5
    )
    assert result.timed_out
    assert result.returncode is None
    assert not result.ok
    pids = _pids(pids_file, 3)
    assert not [pid for pid in pids if _alive(pid)]


def test_a_descendant_holding_the_pipes_does_not_hold_the_caller(tmp_path: Path) -> None:
    # The leader prints and exits 0; its child keeps stdout open and sleeps.
    code = (
        "import os, sys, time\n"
        "print('from the leader', flush=True)\n"
        "if os.fork() == 0:\n"
        "    open(sys.argv[1] + '.new', 'w').write(str(os.getpid()))\n"
        "    os.rename(sys.argv[1] + '.new', sys.argv[1]); time.sleep(1000)\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
    )
    pid_file = tmp_path / "pid"
    result = proc.capture(
        [sys.executable, "-c", code, str(pid_file)], cwd=tmp_path, timeout=60, grace=2
    )
    assert result.returncode == 0
    assert not result.timed_out
    assert result.stdout == "from the leader\n"
    assert not _alive(int(pid_file.read_text()))


def test_lingering_children_are_killed_after_a_normal_exit(tmp_path: Path) -> None:
    # The child closes its output first: the pipes reach EOF, the group still has it.
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.close(1); os.close(2)\n"
        "    open(sys.argv[1] + '.new', 'w').write(str(os.getpid()))\n"
        "    os.rename(sys.argv[1] + '.new', sys.argv[1]); time.sleep(1000)\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
    )
    pid_file = tmp_path / "pid"
    result = proc.capture(
        [sys.executable, "-c", code, str(pid_file)], cwd=tmp_path, timeout=60, grace=5
    )
    assert result.returncode == 0
    assert not _alive(int(pid_file.read_text()))


def test_signal_is_reported(tmp_path: Path) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"
    result = proc.capture([sys.executable, "-c", code], cwd=tmp_path, timeout=30)
    assert result.returncode is None
    assert result.signal == 6
    assert not result.timed_out


def test_missing_program_is_a_result_not_an_exception(tmp_path: Path) -> None:
    result = proc.capture([str(tmp_path / "nope")], cwd=tmp_path, timeout=5)
    assert result.returncode == 127
    assert result.last_error_line.startswith("cannot run ")


def test_undecodable_output_is_replaced_or_kept_as_asked(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.buffer.write(b'caf\\xe9\\n')"
    replaced = proc.capture([sys.executable, "-c", code], cwd=tmp_path, timeout=30)
    kept = proc.capture(
        [sys.executable, "-c", code], cwd=tmp_path, timeout=30, errors="surrogateescape"
    )
    assert replaced.stdout == "caf\ufffd\n"
    assert kept.stdout.encode(errors="surrogateescape") == b"caf\xe9\n"


def test_env_replaces_the_environment(tmp_path: Path) -> None:
    code = "import os; print(sorted(k for k in os.environ if k.startswith('CAPTURE_')))"
    result = proc.capture(
        [sys.executable, "-c", code], cwd=tmp_path, timeout=30, env={"CAPTURE_ONLY": "1"}
    )
    assert result.stdout == "['CAPTURE_ONLY']\n"


def test_cancel_kills_the_group_and_raises_keyboard_interrupt(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    cancel = threading.Event()

    def set_once_running() -> None:
        _pids(pids_file, 3)
        cancel.set()

    setter = threading.Thread(target=set_once_running)
    setter.start()
    with pytest.raises(KeyboardInterrupt):
        proc.capture(
            [sys.executable, str(script), str(pids_file)],
            cwd=tmp_path,
            timeout=600,
            grace=5,
            cancel=cancel,
        )
    setter.join()
    assert not [pid for pid in _pids(pids_file, 3) if _alive(pid)]


def test_ctrl_c_kills_the_group(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = tmp_path / "forker.py"
    script.write_text(FORKER)

    # SIGINT's handler raising KeyboardInterrupt in the main thread, as Ctrl-C does.
    def interrupt_once_running() -> None:
        _pids(pids_file, 3)
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt_once_running)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        proc.capture(
            [sys.executable, str(script), str(pids_file)], cwd=tmp_path, timeout=600, grace=5
        )
    interrupter.join()
    assert not [pid for pid in _pids(pids_file, 3) if _alive(pid)]


def test_ctrl_c_as_popen_returns_is_raised_once_the_child_can_be_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the fork, before Popen returns: without care the child runs on."""
    pids_file = tmp_path / "pids"
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    real_popen = subprocess.Popen

    def interrupted_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real_popen(*args, **kwargs)
        _pids(pids_file, 3)  # all three running
        signal.raise_signal(signal.SIGINT)  # what Ctrl-C does, before Popen has returned
        return child

    monkeypatch.setattr(subprocess, "Popen", interrupted_popen)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        proc.capture(
            [sys.executable, str(script), str(pids_file)], cwd=tmp_path, timeout=600, grace=5
        )
    assert not [pid for pid in _pids(pids_file, 3) if _alive(pid)]
    assert signal.getsignal(signal.SIGINT) is handler


def test_signal_handlers_are_left_as_they_were(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert proc.capture(["true"], cwd=tmp_path, timeout=30).ok
    assert proc.capture([str(tmp_path / "nope")], cwd=tmp_path, timeout=30).returncode == 127
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_from_another_thread_nothing_is_held_back(tmp_path: Path) -> None:
    results: list[proc.CaptureResult] = []
    worker = threading.Thread(
        target=lambda: results.append(proc.capture(["echo", "hi"], cwd=tmp_path, timeout=30))
    )
    worker.start()
    worker.join()
    assert results[0].stdout == "hi\n"
