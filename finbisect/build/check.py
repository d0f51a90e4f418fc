"""A build is checked before it is trusted: the interpreter starts and imports what the
repro imports. When it does not, the build log usually says why (a module that failed to
compile or link); the first such line is the reason given.

The check runs under every CPython the tool builds, 2.7 included: its code is written
for both.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from finbisect.build.modules import import_statements
from finbisect.runs import proc

__all__ = ["cause_in_log", "check_interpreter", "top_level_imports"]

_CHECK_SECONDS = 60.0
# Python 2 and 3: import each module named on the command line, report those that fail.
_CHECK_CODE = """\
import sys
failed = []
for name in sys.argv[1:]:
    try:
        __import__(name)
    except Exception:
        failed.append("%s: %s: %s" % (name, type(sys.exc_info()[1]).__name__, sys.exc_info()[1]))
if failed:
    sys.stdout.write("finbisect-check-failed " + " | ".join(failed) + "\\n")
else:
    sys.stdout.write("finbisect-check-ok\\n")
sys.stdout.flush()
"""
_MISSING = re.compile(r"No module named '?([\w.]+)'?")
_FAILED_MARK = "finbisect-check-failed "
_OK_MARK = "finbisect-check-ok"
_ERROR = re.compile(r"\berror\b|unrecognized option|undefined reference|cannot find -l", re.I)


def top_level_imports(repro_text: str) -> tuple[str, ...]:
    """Modules the repro imports unconditionally: import statements at column 0.

    Indented imports (in a try block, a function, a version test) may be optional,
    and relative imports are the repro's own: neither is required of a build.
    Read as text, so Python 2 repros are read too.
    """
    return tuple(import_statements(repro_text, top_level=True))


def check_interpreter(
    interpreter: Path, modules: Sequence[str], *, log_path: Path, env: Mapping[str, str]
) -> str | None:
    """None when `interpreter` starts and imports `modules`; else the failures, one line.

    Judged by what it prints, not by how it exits: a revision whose every exit crashes
    (the very bug hunted, perhaps) still passes when its imports work.
    """
    workdir = Path(tempfile.mkdtemp(prefix="finbisect-check-"))
    try:
        result = proc.run(
            [str(interpreter), "-c", _CHECK_CODE, *modules],
            cwd=workdir,
            timeout=_CHECK_SECONDS,
            log_path=log_path,
            env=env,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = result.output.splitlines()
    if _OK_MARK in lines:
        return None
    if result.timed_out:
        return f"the built interpreter did not start within {_CHECK_SECONDS:g} s"
    for line in lines:
        if line.startswith(_FAILED_MARK):
            return f"the built interpreter cannot import {line[len(_FAILED_MARK) :]}"
    said = [ln.strip() for ln in lines[1:] if ln.strip()]  # lines[0]: proc's "+ cmd"
    what = f"signal {result.signal}" if result.signal else f"exit status {result.returncode}"
    return f"the built interpreter does not start ({what}): {said[-1] if said else 'no output'}"


def cause_in_log(build_log: str, failure: str) -> str:
    """The build log's line that explains an import failure: the first error while
    building the missing module (2.7's setup.py: "building '_collections' extension"),
    else the first error of the log; "" if none."""
    missing = _MISSING.search(failure)
    lines = build_log.splitlines()
    if missing is not None:
        module = missing.group(1).split(".")[-1]
        start = next(
            (i for i, ln in enumerate(lines) if f"building '{module}' extension" in ln), None
        )
        if start is not None:
            for line in lines[start + 1 :]:
                if line.startswith("building '"):
                    break
                if _ERROR.search(line):
                    return line.strip()
    return next((ln.strip() for ln in lines if _ERROR.search(ln)), "")
