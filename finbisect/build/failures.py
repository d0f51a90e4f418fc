"""Reading a failed build: the compiler's first error lines, and whether the failure was
the machine's (a full disk, no memory, a killed compiler) rather than the revision's.

Only a failure of the revision itself may be remembered as "does not build"; one of the
machine is said as such and never cached.
"""

from __future__ import annotations

import re
from pathlib import Path

from finbisect.runs import proc

__all__ = ["first_errors", "machine_problem", "step_failure"]

_ERROR_LINE = re.compile(
    r"(\berror\b|\*\*\*|No such file|not found|undefined reference|Error \d+)", re.IGNORECASE
)
_FIRST_ERROR = re.compile(r"(\berror:|\*\*\*|undefined reference)", re.IGNORECASE)
# What the machine says when it, not the source, failed a build.
_MACHINE = (
    (re.compile(r"No space left on device|ENOSPC|Disk quota exceeded"), "no space left on device"),
    (re.compile(r"Too many open files|EMFILE"), "too many open files"),
    (
        re.compile(
            r"Cannot allocate memory|virtual memory exhausted|out of memory|"
            r"internal compiler error: Killed|fatal error: Killed signal terminated program"
        ),
        "out of memory (the compiler was killed)",
    ),
)


def step_failure(result: proc.ProcResult, *, what: str, timeout: float) -> str | None:
    """One line for a failed build step (configure, make, the build command); None if ok."""
    if result.timed_out:
        return f"{what} timed out after {timeout:g} s"
    if result.signal is not None:
        return f"{what} was killed by signal {result.signal}"
    if result.returncode != 0:
        return f"{what} failed with exit status {result.returncode}"
    return None


def stopped_midway(failure: str) -> bool:
    """Was the step killed (our timeout, a signal) rather than ended by itself?"""
    return "killed by signal" in failure or "timed out" in failure


def machine_problem(log_path: Path, failure: str) -> str | None:
    """The machine's fault behind a failed build, if the log or the failure shows one."""
    if stopped_midway(failure):
        return failure  # ours or the system's doing (OOM killer, a user), not the revision's
    text = _read(log_path)
    for pattern, what in _MACHINE:
        if pattern.search(text):
            return what
    return None


def first_errors(log_path: Path, limit: int = 3) -> tuple[str, ...]:
    """The compiler's first error lines: what a person reads first in a failed build."""
    lines = _read(log_path).splitlines()
    best = [ln.strip() for ln in lines if _FIRST_ERROR.search(ln)]
    found = best or [ln.strip() for ln in lines[1:] if _ERROR_LINE.search(ln)]
    return tuple(line[:300] for line in found[:limit])


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
