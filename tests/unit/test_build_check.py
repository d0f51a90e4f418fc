"""The build check: which imports a repro needs, running the check, reading the cause."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from finbisect.build.check import cause_in_log, check_interpreter, top_level_imports
from finbisect.build.failures import machine_problem
from finbisect.runs.probe import probe_env

PY2_REPRO = """\
import sys, threading as t
from collections import deque
from . import local
if sys.version_info[0] >= 3:
    import faulthandler
try:
    import _testcapi
except ImportError:
    pass
print "done"
"""


def test_only_unconditional_imports_are_required() -> None:
    assert top_level_imports(PY2_REPRO) == ("sys", "threading", "collections")
    assert top_level_imports("from __future__ import print_function\nimport os.path\n") == (
        "os.path",
    )


def test_an_interpreter_that_imports_everything_passes(tmp_path: Path) -> None:
    env = probe_env(os.environ)
    log = tmp_path / "check.log"
    assert (
        check_interpreter(Path(sys.executable), ["threading", "os.path"], log_path=log, env=env)
        is None
    )


def test_a_missing_module_is_named(tmp_path: Path) -> None:
    failure = check_interpreter(
        Path(sys.executable), ["threading", "no_such_module_here"],
        log_path=tmp_path / "check.log", env=probe_env(os.environ),
    )  # fmt: skip
    assert failure is not None
    assert "cannot import no_such_module_here: ModuleNotFoundError" in failure


def test_a_crash_at_exit_after_the_imports_still_passes(tmp_path: Path) -> None:
    """The hunted bug may crash every exit: the check judges the imports, not the exit."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\n{sys.executable} "$@"\nkill -SEGV $$\n')
    python.chmod(0o755)
    env = probe_env(os.environ)
    assert check_interpreter(python, ["threading"], log_path=tmp_path / "c.log", env=env) is None


def test_an_interpreter_that_does_not_start_says_so(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_bytes(b"\x7fELF")
    python.chmod(0o755)
    failure = check_interpreter(python, [], log_path=tmp_path / "c.log", env=dict(os.environ))
    assert failure is not None
    assert "does not start" in failure


LOG_27 = """\
building '_collections' extension
gcc -pthread -fPIC -fcommon -c /src/Modules/_collectionsmodule.c -o build/_collectionsmodule.o
ld -Wall build/_collectionsmodule.o -o build/_collections.so
/usr/bin/ld: unrecognized option '-Wall'
building '_functools' extension
error: something else
"""


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        ("cannot import threading: ImportError: No module named _collections",
         "/usr/bin/ld: unrecognized option '-Wall'"),
        ("cannot import x: ModuleNotFoundError: No module named 'zzz'",
         "/usr/bin/ld: unrecognized option '-Wall'"),  # the log's first error
    ],
)  # fmt: skip
def test_the_cause_is_the_missing_modules_build_error(failure: str, cause: str) -> None:
    assert cause_in_log(LOG_27, failure) == cause


@pytest.mark.parametrize(
    ("log", "failure", "problem"),
    [
        ("cc1: fatal error: No space left on device", "make failed", "no space left on device"),
        ("virtual memory exhausted", "make failed", "out of memory (the compiler was killed)"),
        ("gcc: fatal error: Killed signal terminated program cc1", "make failed",
         "out of memory (the compiler was killed)"),
        ("Too many open files", "make failed", "too many open files"),
        ("error: 'x' undeclared", "make failed with exit status 2", None),
        ("", "make was killed by signal 9", "make was killed by signal 9"),
    ],
)  # fmt: skip
def test_machine_problems_are_told_from_the_revisions(
    tmp_path: Path, log: str, failure: str, problem: str | None
) -> None:
    path = tmp_path / "build.log"
    path.write_text(log)
    assert machine_problem(path, failure) == problem
