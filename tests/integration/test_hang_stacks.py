"""Stacks of hung and crashing programs, from gdb: attached before the kill, or from the start."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from finbisect.models import OutcomeKind
from finbisect.runs import proc, procfs, stacks
from finbisect.runs.evidence import Evidence, capture_evidence, culprit_frames
from finbisect.runs.probe import probe_env
from tests.processes import ABBA_C, CRASH_C, compile_c

pytestmark = [
    pytest.mark.usefixtures("leftovers"),
    pytest.mark.skipif(stacks.gdb_path() is None, reason="gdb is not installed"),
    pytest.mark.skipif(not procfs.supported(), reason="no /proc syscall view on this system"),
]

ABBA_DIFF = """\
diff --git a/abba.c b/abba.c
--- a/abba.c
+++ b/abba.c
@@ -5,3 +5,4 @@ static void *lock_a_then_b(void *arg) {
     pthread_mutex_lock(&a);
+    /* the culprit */
     pthread_barrier_wait(&both_hold_one);
"""


def _hung_abba(tmp_path: Path) -> tuple[proc.ProcResult, list[stacks.Stacks]]:
    program = compile_c(ABBA_C, tmp_path, "abba")
    taken: list[stacks.Stacks] = []

    def on_hang(pid: int) -> str:
        taken.append(stacks.attach(procfs.group_pids(pid), log_dir=tmp_path, stem="abba"))
        return taken[-1].text()

    result = proc.run(
        [str(program)],
        cwd=tmp_path,
        timeout=120,
        log_path=tmp_path / "run.log",
        watch=procfs.DeadlockWatch(1.0),
        on_hang=on_hang,
    )
    return result, taken


def test_a_deadlocked_programs_stacks_name_its_functions(tmp_path: Path) -> None:
    result, taken = _hung_abba(tmp_path)
    assert result.deadlocked
    assert len(taken) == 1
    found = taken[0]
    if not found.threads:  # e.g. ptrace forbidden: the problem is reported, in one line
        pytest.fail(f"gdb took no stacks: {found.problems}")
    functions = {f.function for t in found.threads for f in t.c_frames}
    assert {"lock_a_then_b", "lock_b_then_a", "main"} <= functions
    assert found.summary() == (
        "main thread in main; thread 2 in lock_a_then_b; thread 3 in lock_b_then_a"
    )
    log = result.log_path.read_text()
    assert "lock_a_then_b at " in log  # the stacks are kept in the run's log
    assert log.index("lock_a_then_b") < log.index("finbisect: deadlocked")


def test_a_crash_under_gdb_has_its_stacks_and_evidence_roundtrips(tmp_path: Path) -> None:
    program = compile_c(CRASH_C, tmp_path, "crash")
    run = stacks.run_under_gdb(
        [str(program)], cwd=tmp_path, timeout=60, log_path=tmp_path / "gdb.log"
    )
    assert run.signal == "SIGSEGV"
    assert run.stacks.threads[0].c_frames[0].function == "crash_here"
    assert run.stacks.summary() == "main thread in crash_here"


def test_a_clean_exit_under_gdb_has_no_stacks(tmp_path: Path) -> None:
    run = stacks.run_under_gdb(
        ["/bin/sh", "-c", "echo 'a  b'; exit 3"],
        cwd=tmp_path,
        timeout=60,
        log_path=tmp_path / "gdb.log",
    )
    assert (run.signal, run.exit_code, run.stacks.threads) == (None, 3, ())
    assert "a  b\n" in run.result.output  # arguments reach the program as they were


def test_evidence_of_a_hang_and_the_culprits_frames(tmp_path: Path) -> None:
    program = compile_c(ABBA_C, tmp_path, "abba")
    evidence = capture_evidence(
        sha="c" * 40,
        kind=OutcomeKind.HANG,
        interpreter=program,
        repro=tmp_path / "unused.py",
        timeout=120,
        logs=tmp_path / "logs",
        env=probe_env(os.environ),
    )
    assert evidence is not None
    assert evidence.signature.startswith("deadlocked: main thread in main")
    again = Evidence.from_json(json.loads(json.dumps(evidence.to_json())))
    assert again == evidence
    hits = culprit_frames(ABBA_DIFF, evidence)
    assert [hit.describe() for hit in hits][:1] == [
        f"the culprit changes lock_a_then_b(), frame #{hits[0].frame} of thread 2"
    ]


def test_evidence_of_a_crash(tmp_path: Path) -> None:
    program = compile_c(CRASH_C, tmp_path, "crash")
    evidence = capture_evidence(
        sha="d" * 40,
        kind=OutcomeKind.CRASH,
        interpreter=program,
        repro=tmp_path / "unused.py",
        timeout=60,
        logs=tmp_path / "logs",
        env=probe_env(os.environ),
    )
    assert evidence is not None
    assert evidence.signature == "killed by SIGSEGV: main thread in crash_here"
    assert evidence.to_json()["threads"][0]["c_frames"][0]["function"] == "crash_here"


def test_a_python_hang_names_the_lock_acquire_in_every_thread(tmp_path: Path) -> None:
    from tests.integration.test_hang_detection import PY_ABBA

    repro = tmp_path / "repro.py"
    repro.write_text(PY_ABBA)
    evidence = capture_evidence(
        sha="e" * 40,
        kind=OutcomeKind.HANG,
        interpreter=Path(sys.executable),
        repro=repro,
        timeout=60,
        logs=tmp_path / "logs",
        env=probe_env(os.environ),
    )
    assert evidence is not None
    assert len(evidence.threads) == 3
    assert all(
        any("acquire" in frame.function for frame in thread.c_frames) for thread in evidence.threads
    )
