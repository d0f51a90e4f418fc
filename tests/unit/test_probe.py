"""Classification of one run: kind, class and signature (the probe contract)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from finbisect.models import OutcomeKind, RunClass
from finbisect.runs.probe import DEFAULT_SYMPTOMS, classify, probe_env
from finbisect.runs.proc import ProcResult

CRASH, HANG, ERROR, OK = OutcomeKind.CRASH, OutcomeKind.HANG, OutcomeKind.ERROR, OutcomeKind.OK
SYMPTOM, CLEAN, UNRELATED = RunClass.SYMPTOM, RunClass.CLEAN, RunClass.UNRELATED
GIL = "Fatal Python error: pthread_mutex_destroy(gil_mutex) failed"
SEGV = "Fatal Python error: Segmentation fault"


def _result(
    *, code: int | None = 0, sig: int | None = None, timed_out: bool = False, output: str = ""
) -> ProcResult:
    return ProcResult(
        returncode=code,
        signal=sig,
        timed_out=timed_out,
        duration=1.0,
        output=f"+ python /tmp/repro.py\n{output}",
        log_path=Path("/dev/null"),
    )


ABRT = int(signal.SIGABRT)
ASAN = (
    "=================================================================\n"
    "==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020 at pc 0x55\n"
    "READ of size 8 at 0x6020 thread T1\n"
    "    #0 0x55d1 in take_gil Python/ceval_gil.c:300\n"
    "    #1 0x55d2 in PyEval_RestoreThread Python/ceval_gil.c:600\n"
)
TSAN = (
    "==================\nWARNING: ThreadSanitizer: data race (pid=9)\n"
    "  Write of size 8 at 0x7b04 by thread T1:\n    #0 0x4a in drop_gil Python/ceval_gil.c:250\n"
)
CASES = [
    # (result, symptoms, match, kind, class)
    (_result(code=0, output="hello\n"), DEFAULT_SYMPTOMS, None, OK, CLEAN),
    (_result(code=None, sig=ABRT, output=GIL), DEFAULT_SYMPTOMS, None, CRASH, SYMPTOM),
    (_result(code=1, output=f"{GIL}\n"), DEFAULT_SYMPTOMS, None, CRASH, SYMPTOM),
    (_result(code=None, sig=9, timed_out=True), DEFAULT_SYMPTOMS, None, HANG, SYMPTOM),
    (_result(code=1, output="ImportError: x\n"), DEFAULT_SYMPTOMS, None, ERROR, UNRELATED),
    (_result(code=1, output="ImportError: x\n"), frozenset({ERROR}), None, ERROR, SYMPTOM),
    (_result(code=None, sig=11, output=SEGV), DEFAULT_SYMPTOMS, "gil_mutex", CRASH, UNRELATED),
    (_result(code=None, sig=ABRT, output=GIL), DEFAULT_SYMPTOMS, "gil_mutex", CRASH, SYMPTOM),
    (_result(code=None, sig=9, timed_out=True), DEFAULT_SYMPTOMS, "gil_mutex", HANG, SYMPTOM),
    (_result(code=None, sig=ABRT, output=GIL), frozenset({HANG}), None, CRASH, UNRELATED),
    (_result(code=2, output="boom\n"), frozenset({ERROR}), "gil", ERROR, UNRELATED),
    # sanitizer reports are crashes whatever the exit status
    (_result(code=1, output=ASAN), DEFAULT_SYMPTOMS, None, CRASH, SYMPTOM),
    (_result(code=66, output=TSAN), DEFAULT_SYMPTOMS, None, CRASH, SYMPTOM),
    (_result(code=66, output=TSAN), DEFAULT_SYMPTOMS, "use-after-free", CRASH, UNRELATED),
    # --match must not see proc's "+ cmd" header line, which names the repro
    (_result(code=1, output="boom\n"), frozenset({ERROR}), "repro", ERROR, UNRELATED),
]


@pytest.mark.parametrize(("result", "symptoms", "match", "kind", "run_class"), CASES)
def test_classify(
    result: ProcResult,
    symptoms: frozenset[OutcomeKind],
    match: str | None,
    kind: OutcomeKind,
    run_class: RunClass,
) -> None:
    pattern = re.compile(match) if match else None
    assert classify(result, symptoms=symptoms, match=pattern)[:2] == (kind, run_class)


@pytest.mark.parametrize(
    ("result", "match", "signature"),
    [
        (_result(code=None, sig=ABRT, output=f"noise\n{GIL}\nPython runtime state\n"), None, GIL),
        (_result(code=None, sig=11, output=""), None, "killed by SIGSEGV"),
        (_result(code=1, output="Traceback\nValueError: no\n"), None, "ValueError: no"),
        (_result(code=1, output="a gil_mutex line\nlast\n"), "gil_mutex", "a gil_mutex line"),
        (_result(code=1, output=ASAN), None, "#0 0x55d1 in take_gil Python/ceval_gil.c:300"),
        (_result(code=66, output=TSAN), None, "#0 0x4a in drop_gil Python/ceval_gil.c:250"),
    ],
)
def test_signature_is_the_line_that_identifies_the_failure(
    result: ProcResult, match: str | None, signature: str
) -> None:
    symptoms = frozenset({CRASH, ERROR})
    pattern = re.compile(match) if match else None
    assert classify(result, symptoms=symptoms, match=pattern)[2] == signature


def test_env_drops_foreign_python_variables() -> None:
    env = probe_env(
        {"PATH": "/bin", "PYTHONPATH": "/x", "PYTHONHOME": "/y", "PYTHONFAULTHANDLER": "1"}
    )
    assert env == {
        "PATH": "/bin",
        "PYTHONFAULTHANDLER": "1",
        "PYTHONNOUSERSITE": "1",
        "ASAN_OPTIONS": "detect_leaks=0",
    }
    assert probe_env({"ASAN_OPTIONS": "halt_on_error=1"})["ASAN_OPTIONS"] == "halt_on_error=1"
