"""gdb output parsed into stacks; a hang's signature and --match; evidence; the culprit's frames."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finbisect.models import OutcomeKind, RunClass
from finbisect.runs.evidence import Evidence, FrameHit, changed_functions, culprit_frames
from finbisect.runs.probe import DEFAULT_SYMPTOMS, classify
from finbisect.runs.proc import ProcResult
from finbisect.runs.stacks import CFrame, PyFrame, Stacks, ThreadStack, find_libpython, parse_gdb

# `gdb -p 6987 -batch ... thread apply all bt` then py-bt, on a 2.7 interpreter (trimmed).
GDB_OUTPUT = """\
+ /usr/bin/gdb -p 6987 -nx -batch -ex 'thread apply all bt' -ex 'echo \\n@@finbisect: python stacks@@\\n'
[New LWP 6990]
[Thread debugging using libthread_db enabled]
__futex_abstimed_wait_common64 (private=<optimized out>, cancel=true, abstime=0x0, op=393, expected=0, futex_word=0x561be9891440) at ./nptl/futex-internal.c:57

Thread 2 (Thread 0x7f86e50a36c0 (LWP 6990) "python"):
#0  __futex_abstimed_wait_common64 (private=<optimized out>, cancel=true, abstime=0x0, op=393, expected=0, futex_word=0x561be9844a90) at ./nptl/futex-internal.c:57
#1  0x00007f86e5371f7b in __GI___futex_abstimed_wait_cancelable64 (futex_word=futex_word@entry=0x561be9844a90, expected=expected@entry=0, clockid=clockid@entry=0, abstime=abstime@entry=0x0, private=<optimized out>) at ./nptl/futex-internal.c:139
#2  0x00007f86e537ccff in do_futex_wait (sem=sem@entry=0x561be9844a90, abstime=0x0, clockid=0) at ./nptl/sem_waitcommon.c:111
#3  0x00007f86e537cdf9 in __new_sem_wait (sem=sem@entry=0x561be9844a90) at ./nptl/sem_wait.c:42
#4  0x0000561bd9a67a88 in PyThread_acquire_lock (lock=0x561be9844a90, waitflag=<optimized out>) at Python/thread_pthread.h:356
#5  0x0000561bd9a6ae34 in lock_PyThread_acquire_lock (self=0x7f86e5276250, args=<optimized out>) at ./Modules/threadmodule.c:52
#6  0x0000561bd99acd0b in PyObject_Call (func=0x7f86e51020a0, arg=0x7f86e52a9050, kw=0x0) at Objects/abstract.c:2544
#7  0x00007f86e53f58ec in clone3 () at ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81

Thread 1 (Thread 0x7f86e52e9740 (LWP 6987) "python"):
#0  __futex_abstimed_wait_common64 (private=<optimized out>, cancel=true, abstime=0x0, op=393, expected=0, futex_word=0x561be9891440) at ./nptl/futex-internal.c:57
#1  0x00007f86e537cdf9 in __new_sem_wait (sem=sem@entry=0x561be9891440) at ./nptl/sem_wait.c:42
#2  0x0000561bd9a6ae34 in take_gil (tstate=0x55) at Python/ceval_gil.c:300
#3  0x0000561bd9a55955 in wait_for_thread_shutdown () at Python/pythonrun.c:1738
#4  Py_Finalize () at Python/pythonrun.c:419
#5  0x00007f86e531324a in __libc_start_call_main (main=main@entry=0x561bd99a2e10 <main>, argc=argc@entry=5, argv=argv@entry=0x7ffdce36b788) at ../sysdeps/nptl/libc_start_call_main.h:58
#6  0x0000561bd99a2e41 in _start ()

@@finbisect: python stacks@@

Thread 2 (Thread 0x7f86e50a36c0 (LWP 6990) "python"):
Traceback (most recent call first):
  Waiting for the GIL
  <built-in method acquire of thread.lock object at remote 0x7f86e5276250>
  File "abba.py", line 6, in one
    with b: pass
  File "/src/Lib/threading.py", line 754, in run
    self.__target(*self.__args, **self.__kwargs)

Thread 1 (Thread 0x7f86e52e9740 (LWP 6987) "python"):
Traceback (most recent call first):
  File "/src/Lib/threading.py", line 340, in wait
    waiter.acquire()
[Inferior 1 (process 6987) detached]
"""  # noqa: E501


def test_gdb_output_becomes_threads_with_c_and_python_frames() -> None:
    threads = parse_gdb(GDB_OUTPUT, 6987)
    assert [(t.label, t.tid, t.name) for t in threads] == [
        ("main thread", 6987, "python"),
        ("thread 2", 6990, "python"),
    ]
    main, second = threads
    assert main.c_frames[2] == CFrame(
        number=2, function="take_gil", file="Python/ceval_gil.c", line=300
    )
    assert main.c_frames[4] == CFrame(
        number=4, function="Py_Finalize", file="Python/pythonrun.c", line=419
    )
    assert main.c_frames[6] == CFrame(number=6, function="_start")
    assert second.python_frames == (
        PyFrame(function="built-in method acquire of thread.lock object"),
        PyFrame(function="one", file="abba.py", line=6),
        PyFrame(function="run", file="/src/Lib/threading.py", line=754),
    )


def test_summary_names_each_threads_innermost_meaningful_frame() -> None:
    stacks = Stacks(threads=parse_gdb(GDB_OUTPUT, 6987))
    assert stacks.summary() == (
        "main thread in take_gil (threading.py:wait); "
        "thread 2 in lock_PyThread_acquire_lock (abba.py:one)"
    )
    text = stacks.text()
    assert 'process 6987, main thread (LWP 6987 "python"):\n  #0  __futex' in text
    assert '    File "abba.py", line 6, in one\n' in text


def _thread(tid: int, number: int, *functions: str) -> ThreadStack:
    frames = tuple(CFrame(number=i, function=f) for i, f in enumerate(functions))
    return ThreadStack(pid=100, tid=tid, number=number, c_frames=frames)


def test_threads_waiting_in_the_same_place_are_named_together() -> None:
    stacks = Stacks(
        threads=(
            _thread(100, 1, "pthread_join", "main"),
            _thread(101, 2, "__lll_lock_wait", "___pthread_mutex_lock", "worker"),
            _thread(102, 3, "__lll_lock_wait", "worker"),
            _thread(103, 4, "??", "??"),
        )
    )
    assert stacks.summary() == "main thread in main; threads 2, 3 in worker; thread 4 in ?"


def _hang(*, deadlocked: bool = True) -> ProcResult:
    return ProcResult(
        returncode=None,
        signal=None,
        timed_out=True,
        duration=61.3,
        output="+ python repro.py\n",
        log_path=Path("/dev/null"),
        deadlocked=deadlocked,
        hang_reason="deadlocked: all 2 threads blocked for 1.0 s"
        if deadlocked
        else "no exit within 60 s",
    )


STACKS = Stacks(threads=parse_gdb(GDB_OUTPUT, 6987))


@pytest.mark.parametrize(
    ("result", "stacks", "match", "run_class", "signature"),
    [
        (_hang(), STACKS, None, RunClass.SYMPTOM,
         "deadlocked: main thread in take_gil (threading.py:wait); "
         "thread 2 in lock_PyThread_acquire_lock (abba.py:one)"),
        (_hang(deadlocked=False), STACKS, None, RunClass.SYMPTOM,
         "no exit within 60 s: main thread in take_gil (threading.py:wait); "
         "thread 2 in lock_PyThread_acquire_lock (abba.py:one)"),
        (_hang(), STACKS, "take_gil", RunClass.SYMPTOM, None),
        (_hang(), STACKS, r"threading\.py.*in wait", RunClass.SYMPTOM, None),  # Python frames
        (_hang(), STACKS, "drop_gil", RunClass.UNRELATED, None),  # an unrelated hang
        (_hang(), STACKS, "deadlocked", RunClass.SYMPTOM, None),  # the reason is searched too
        (_hang(deadlocked=False), STACKS, "deadlocked", RunClass.UNRELATED, None),
        (_hang(), None, "drop_gil", RunClass.SYMPTOM,  # no stacks: counted by its kind
         "deadlocked: all 2 threads blocked for 1.0 s"),
        (_hang(deadlocked=False), Stacks(problems=("gdb: ptrace: Operation not permitted.",)),
         "drop_gil", RunClass.SYMPTOM, "no exit within 60 s"),
    ],
)  # fmt: skip
def test_a_hangs_signature_is_where_it_waits_and_match_applies_to_its_stacks(
    result: ProcResult,
    stacks: Stacks | None,
    match: str | None,
    run_class: RunClass,
    signature: str | None,
) -> None:
    pattern = re.compile(match) if match else None
    kind, got_class, got_signature = classify(
        result, symptoms=DEFAULT_SYMPTOMS, match=pattern, stacks=stacks
    )
    assert (kind, got_class) == (OutcomeKind.HANG, run_class)
    if signature is not None:
        assert got_signature == signature


def test_a_hang_signature_says_the_configured_timeout_not_the_duration() -> None:
    assert classify(_hang(deadlocked=False), symptoms=DEFAULT_SYMPTOMS, match=None)[2] == (
        "no exit within 60 s"
    )


def test_advice_when_gdb_cannot_attach() -> None:
    denied = Stacks(problems=("no stacks of process 5: gdb: ptrace: Operation not permitted.",))
    advice = denied.advice()
    assert advice is not None
    assert advice.startswith("gdb cannot attach to hung interpreters here")
    assert STACKS.advice() is None
    gone = Stacks(problems=("no stacks of process 5: gdb: ptrace: No such process.",))
    assert gone.advice() is None


CULPRIT_DIFF = """\
diff --git a/Python/ceval_gil.c b/Python/ceval_gil.c
index 1..2 100644
--- a/Python/ceval_gil.c
+++ b/Python/ceval_gil.c
@@ -290,6 +290,7 @@ take_gil(PyThreadState *tstate)
     int err = errno;
+    MUTEX_LOCK(gil->mutex);
@@ -400,0 +402,5 @@ drop_gil(struct _gil_runtime_state *gil)
+static void
+new_helper(void)
+{
+}
diff --git a/Lib/threading.py b/Lib/threading.py
--- a/Lib/threading.py
+++ b/Lib/threading.py
@@ -330,3 +330,4 @@ class Condition:
     def wait(self, timeout=None):
+        pass
@@ -900 +901 @@ def join(self, timeout=None):
-        x = 1
+        x = 2
"""


def test_changed_functions_come_from_hunk_headers_and_definitions() -> None:
    assert changed_functions(CULPRIT_DIFF) == (
        ("Python/ceval_gil.c", "take_gil"),
        ("Python/ceval_gil.c", "drop_gil"),
        ("Python/ceval_gil.c", "new_helper"),
        ("Lib/threading.py", "wait"),
        ("Lib/threading.py", "join"),
    )


def _evidence() -> Evidence:
    return Evidence(
        sha="a" * 40,
        kind=OutcomeKind.HANG,
        signature=f"deadlocked: {STACKS.summary()}",
        threads=STACKS.threads,
        log="/tmp/run.log",
    )


def test_culprit_frames_name_the_changed_functions_on_the_stacks() -> None:
    hits = culprit_frames(CULPRIT_DIFF, _evidence())
    assert hits == (
        FrameHit(function="take_gil", file="Python/ceval_gil.c", thread="main thread", frame=2),
        FrameHit(
            function="wait", file="Lib/threading.py", thread="main thread", frame=0, python=True
        ),
    )
    assert [hit.describe() for hit in hits] == [
        "the culprit changes take_gil(), frame #2 of the main thread",
        "the culprit changes wait(), Python frame #0 of the main thread",
    ]


def test_evidence_json_roundtrips_and_refuses_other_versions() -> None:
    evidence = _evidence()
    data = evidence.to_json()
    assert data["threads"][0]["c_frames"][2]["function"] == "take_gil"
    assert data["threads"][1]["python_frames"][1] == {
        "function": "one",
        "file": "abba.py",
        "line": 6,
    }
    assert Evidence.from_json(data) == evidence
    with pytest.raises(ValueError, match="unknown evidence version"):
        Evidence.from_json({**data, "version": 99})


def test_libpython_is_found_in_the_revisions_tree(tmp_path: Path) -> None:
    (tmp_path / "Tools" / "gdb").mkdir(parents=True)
    assert find_libpython(tmp_path / "python") is None
    (tmp_path / "Tools" / "gdb" / "libpython.py").write_text("")
    assert find_libpython(tmp_path / "python") == tmp_path / "Tools" / "gdb" / "libpython.py"
