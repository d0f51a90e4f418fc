"""Deadlock detection on real processes: stuck groups end early, waits that may end do not.

Small C programs compiled in tmp_path, and Python repros run by this very
interpreter, go through `proc.run` with the `DeadlockWatch` (grace 1 s). Only
outcomes are asserted, never durations: a deadlock is told apart from a timeout
by its reason, and every negative case must end by itself, with status 0.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

import pytest

from finbisect.models import OutcomeKind, RunClass
from finbisect.runs import proc, procfs
from finbisect.runs import stacks as stacks_module
from finbisect.runs.probe import Probe, ProbeConfig
from tests.processes import (
    ABBA_C,
    BUSY_C,
    JOIN_COND_C,
    PIPE_CHILD_C,
    READ_PATH_C,
    SLEEP_C,
    TIMED_WAIT_C,
    compile_c,
)

pytestmark = [
    pytest.mark.usefixtures("leftovers"),
    pytest.mark.skipif(not procfs.supported(), reason="no /proc syscall view on this system"),
]

PY_ABBA = """
import threading
a, b = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)
def a_then_b():
    with a:
        both_hold_one.wait()
        with b:
            pass
def b_then_a():
    with b:
        both_hold_one.wait()
        with a:
            pass
threading.Thread(target=a_then_b).start()
threading.Thread(target=b_then_a).start()
"""


def _run(argv: list[str], tmp_path: Path, *, timeout: float) -> proc.ProcResult:
    return proc.run(
        argv,
        cwd=tmp_path,
        timeout=timeout,
        log_path=tmp_path / "run.log",
        grace=0.5,
        watch=procfs.DeadlockWatch(1.0),
    )


@pytest.mark.parametrize(
    ("source", "threads"),
    [
        (ABBA_C, "all 3 threads blocked"),
        (JOIN_COND_C, "all 2 threads blocked"),
        (PIPE_CHILD_C, "all 2 threads of 2 processes blocked"),
    ],
    ids=["abba-mutexes", "join-a-condition-wait", "child-reads-parents-pipe"],
)
def test_deadlocks_are_hangs_before_the_timeout(source: str, threads: str, tmp_path: Path) -> None:
    program = compile_c(source, tmp_path, "prog")
    result = _run([str(program)], tmp_path, timeout=120)
    assert result.timed_out
    assert result.deadlocked
    assert result.hang_reason == f"deadlocked: {threads} for 1.0 s"
    assert f"finbisect: deadlocked: {threads}" in result.output


@pytest.mark.parametrize(
    ("source", "argv"),
    [
        (SLEEP_C, []),  # clock_nanosleep: a timed wait
        (TIMED_WAIT_C, []),  # an untimed join on a thread in a timed condition wait
    ],
    ids=["sleep-5s", "join-a-timed-wait"],
)
def test_waits_that_end_by_themselves_are_not_hangs(
    source: str, argv: list[str], tmp_path: Path
) -> None:
    program = compile_c(source, tmp_path, "prog")
    result = _run([str(program), *argv], tmp_path, timeout=10)
    assert (result.returncode, result.timed_out, result.deadlocked) == (0, False, False)
    assert result.hang_reason == ""


def test_busy_loop_is_stopped_by_the_timeout_with_its_reason(tmp_path: Path) -> None:
    program = compile_c(BUSY_C, tmp_path, "busy")
    result = _run([str(program)], tmp_path, timeout=3)
    assert result.timed_out
    assert not result.deadlocked
    assert result.hang_reason == "no exit within 3 s"


def test_reading_a_pipe_written_from_outside_the_group_is_not_a_hang(tmp_path: Path) -> None:
    program = compile_c(READ_PATH_C, tmp_path, "reader")
    read_end, write_end = os.pipe()
    writer = threading.Timer(2.0, os.write, (write_end, b"x"))
    writer.start()
    try:
        result = _run([str(program), f"/proc/{os.getpid()}/fd/{read_end}"], tmp_path, timeout=30)
    finally:
        writer.cancel()
        writer.join()
        os.close(read_end)
        os.close(write_end)
    assert (result.returncode, result.timed_out, result.deadlocked) == (0, False, False)


def _probe(
    tmp_path: Path,
    code: str,
    *,
    timeout: float = 60,
    hang_grace: float = 1.0,
    stacks: bool = True,
    match: re.Pattern[str] | None = None,
) -> Probe:
    repro = tmp_path / "repro.py"
    repro.write_text(code)
    config = ProbeConfig(
        repro=repro, timeout=timeout, hang_grace=hang_grace, stacks=stacks, match=match
    )
    return Probe(config, tmp_path / "logs")


def test_python_abba_is_a_deadlocked_hang(tmp_path: Path) -> None:
    outcome = _probe(tmp_path, PY_ABBA).run_once(Path(sys.executable), "abc", 0)
    assert (outcome.kind, outcome.run_class) == (OutcomeKind.HANG, RunClass.SYMPTOM)
    assert outcome.signature.startswith("deadlocked")
    log = Path(outcome.log_path).read_text()
    assert "finbisect: deadlocked: all 3 threads blocked for 1.0 s" in log


def test_python_sleep_is_ok(tmp_path: Path) -> None:
    outcome = _probe(tmp_path, "import time\ntime.sleep(3)\n").run_once(
        Path(sys.executable), "abc", 0
    )
    assert (outcome.kind, outcome.run_class) == (OutcomeKind.OK, RunClass.CLEAN)


def test_without_detection_a_deadlock_waits_for_the_timeout(tmp_path: Path) -> None:
    probe = _probe(tmp_path, PY_ABBA, timeout=3, hang_grace=0, stacks=False)
    outcome = probe.run_once(Path(sys.executable), "abc", 0)
    assert outcome.kind is OutcomeKind.HANG
    assert outcome.signature == "no exit within 3 s"


def test_without_gdb_a_hang_counts_by_its_kind_and_advice_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    probe = _probe(tmp_path, PY_ABBA, match=re.compile("no such frame"))
    outcome = probe.run_once(Path(sys.executable), "abc", 0)
    assert (outcome.kind, outcome.run_class) == (OutcomeKind.HANG, RunClass.SYMPTOM)
    assert outcome.signature == "deadlocked: all 3 threads blocked for 1.0 s"
    assert probe.advice == ("install gdb (Debian: apt-get install gdb) to see where hung "
                            "interpreters wait",)  # fmt: skip


SETSID_WAKER = """
import os, signal, sys, threading, time
signal.signal(signal.SIGUSR1, lambda *_: sys.exit(0))
if os.fork() == 0:
    os.setsid()  # out of the process group: only the parent link shows it
    time.sleep(2.5)
    os.kill(os.getppid(), signal.SIGUSR1)
    os._exit(0)
lock = threading.Lock()
lock.acquire()
lock.acquire()  # forever, unless the signal's handler raises
"""


def test_a_descendant_that_left_the_group_with_setsid_still_counts(tmp_path: Path) -> None:
    outcome = _probe(tmp_path, SETSID_WAKER).run_once(Path(sys.executable), "abc", 0)
    assert (outcome.kind, outcome.run_class) == (OutcomeKind.OK, RunClass.CLEAN)


@pytest.mark.skipif(stacks_module.gdb_path() is None, reason="gdb is not installed")
@pytest.mark.parametrize("match", [None, re.compile("acquire|lock|wait|futex")])
def test_a_revisions_later_hangs_skip_gdb_unless_match_needs_their_stacks(
    tmp_path: Path, match: re.Pattern[str] | None
) -> None:
    probe = _probe(tmp_path, PY_ABBA, match=match)
    outcomes = probe.run(Path(sys.executable), "abc", runs=2)
    assert [o.kind for o in outcomes] == [OutcomeKind.HANG, OutcomeKind.HANG]
    gdb_logs = sorted(p.name for p in (tmp_path / "logs").glob("gdb-*"))
    second = Path(outcomes[1].log_path).read_text()
    if match is None:
        assert all(name.startswith("gdb-abc-1") for name in gdb_logs), gdb_logs
        assert "finbisect: stacks not taken again (this revision's: " in second
        assert outcomes[1].signature == "deadlocked: all 3 threads blocked for 1.0 s"
    else:  # --match reads every hang's stacks
        assert any(name.startswith("gdb-abc-2") for name in gdb_logs), gdb_logs
        assert "stacks not taken again" not in second


def _stamped(code: str, stamps: Path) -> str:
    """`code`, writing 'start T' when it begins and 'end T' at a normal exit (monotonic)."""
    return (
        f"import atexit, time\n"
        f"def _stamp(what):\n"
        f"    with open({str(stamps)!r}, 'a') as f:\n"
        f"        f.write(f'{{what}} {{time.monotonic()}}\\n')\n"
        f"_stamp('start')\n"
        f"atexit.register(_stamp, 'end')\n" + code
    )


def _stamps(path: Path, what: str) -> list[float]:
    return [
        float(t) for w, t in (line.split() for line in path.read_text().splitlines()) if w == what
    ]


def test_the_next_run_starts_while_a_deadlocked_one_waits_out_its_grace(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    probe = _probe(tmp_path, _stamped(PY_ABBA, stamps), stacks=False)
    outcomes = probe.run(Path(sys.executable), "abc", runs=3)
    assert [o.kind for o in outcomes] == [OutcomeKind.HANG] * 3
    starts = _stamps(stamps, "start")
    assert len(starts) == 3
    # Each next run began before the one before it was judged a hang and killed.
    for i in (0, 1):
        assert starts[i + 1] < starts[i] + outcomes[i].duration - 0.5


def test_runs_that_exit_run_strictly_one_after_another(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    probe = _probe(tmp_path, _stamped("import time\ntime.sleep(0.3)\n", stamps))
    outcomes = probe.run(Path(sys.executable), "abc", runs=3)
    assert [o.kind for o in outcomes] == [OutcomeKind.OK] * 3
    starts, ends = _stamps(stamps, "start"), _stamps(stamps, "end")
    assert all(ends[i] < starts[i + 1] for i in (0, 1))
