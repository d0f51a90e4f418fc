"""Where each thread of a hung (or crashing) interpreter is: C and Python stacks from gdb.

`attach` runs `gdb -p PID -batch` on every process of a hung group before it is
killed: `thread apply all bt` for the C frames and, with the revision's own
`Tools/gdb/libpython.py` (2.7 on), `thread apply all py-bt` for the Python
frames. `run_under_gdb` runs a repro under gdb from the start, for a crash's
stacks. gdb runs through `proc` with a timeout (it can hang too). Its output is
parsed into `ThreadStack`s; `Stacks.summary` names each thread's innermost
meaningful frame (wait primitives skipped), short and stable enough for a
signature and for `--match`.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from finbisect.runs import proc

__all__ = [
    "GDB_ADVICE",
    "CFrame",
    "GdbRun",
    "PyFrame",
    "Stacks",
    "ThreadStack",
    "attach",
    "find_libpython",
    "gdb_path",
    "parse_gdb",
    "run_under_gdb",
]

GDB_ADVICE = "install gdb (Debian: apt-get install gdb) to see where hung interpreters wait"
GDB_TIMEOUT = 30.0  # seconds for one gdb session; it may hang on a broken process
_PY_MARK = "@@finbisect: python stacks@@"
_MAX_SUMMARY = 300
_GDB_SETUP = (
    # -iex: before the inferior is loaded; errors from an older gdb's unknown settings are harmless
    "-iex", "set debuginfod enabled off",
    "-iex", "set auto-load python-scripts off",
    "-ex", "set pagination off",
    "-ex", "set width 0",
    "-ex", "set confirm off",
)  # fmt: skip

_THREAD = re.compile(r"^Thread (\d+) \((.*)\):\s*$")
_FRAME = re.compile(
    r"^#(\d+)\s+(?:0x[0-9a-fA-F]+ in )?(\S+)(?: \(.*\))?(?: at (\S+):(\d+))?(?: from (\S+))?\s*$"
)
_PY_FILE = re.compile(r'^\s+File "(.*)", line (\d+|\?), in (.+?)(?: \(\))?\s*$')
_PY_BUILTIN = re.compile(r"^\s+<(built-in (?:method|function) [^>]*?)(?: at remote 0x[0-9a-f]+)?>")
_CAUGHT = re.compile(r"received signal (SIG\w+)")
_TERMINATED = re.compile(r"Program terminated with signal (SIG\w+)")
_EXITED = re.compile(r"\[Inferior \d+ \(process (\d+)\) exited (normally|with code (\d+))\]")

# Frames that say "waiting" and nothing about who waits: libc and CPython's lock plumbing.
_PLUMBING = re.compile(
    r"""^(?:
      \?\? | _*(?:GI_+)?futex\w* | _*(?:GI_+)?lll_\w+ | _*(?:GI_+)?(?:libc_)?(?:
        read|write|poll|ppoll|select|pselect6?|epoll_wait|epoll_pwait|wait4|waitpid|waitid
        |nanosleep|clock_nanosleep(?:_time64)?|pause|sigsuspend|syscall
      ) | _*pthread_(?:cond|mutex|rwlock)_\w+ | _*pthread_(?:clock|timed)?join\w*
      | do_futex_wait | _*new_sem_wait\w* | _*sem_(?:clock|timed)?wait\w*
      | _*internal_syscall_cancel | _*syscall_cancel\w*
      | PyThread_acquire_lock\w* | acquire_timed | PyCOND_\w+ | PyMUTEX_\w+
      | _PySemaphore_\w+ | _PyMutex_\w+ | _PyParkingLot_\w+ | PyMutex_Lock\w* | _?PyEvent_\w+
    )$""",
    re.VERBOSE,
)
_LIBC_FILE = re.compile(r"^(?:\.\./|\./)(?:nptl|sysdeps|posix|misc|io|signal|csu)/")
_LIBC_LIBRARY = re.compile(r"/lib(?:c|pthread)[.-]")
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class CFrame:
    number: int  # gdb's #N, 0 innermost
    function: str  # "??" when gdb does not know
    file: str = ""
    line: int | None = None
    library: str = ""  # "from /lib/..." when there is no source location


@dataclass(frozen=True, kw_only=True)
class PyFrame:
    function: str  # a Python function, or "built-in method acquire of _thread.lock object"
    file: str = ""  # "" for a built-in
    line: int | None = None


@dataclass(frozen=True, kw_only=True)
class ThreadStack:
    pid: int
    tid: int
    number: int  # gdb's thread number, 1 for the first thread gdb saw
    name: str = ""
    c_frames: tuple[CFrame, ...] = ()  # innermost first
    python_frames: tuple[PyFrame, ...] = ()  # innermost first

    @property
    def label(self) -> str:
        return "main thread" if self.tid == self.pid else f"thread {self.number}"

    def telling_frames(self) -> tuple[CFrame, ...]:
        """The frames that say who waits or crashes: wait primitives and libc skipped."""
        return tuple(f for f in self.c_frames if f.function != "??" and not _is_plumbing(f))

    def innermost(self) -> str:
        """The first frame that says where it waits (wait primitives skipped), with Python's."""
        frames = [f for f in self.c_frames if f.function != "??"]
        meaningful = [f for f in frames if not _is_plumbing(f)]
        where = (meaningful or frames or [CFrame(number=0, function="?")])[0].function
        files = [f for f in self.python_frames if f.file]
        if files:
            where += f" ({PurePosixPath(files[0].file).name}:{files[0].function})"
        return where


def _is_plumbing(frame: CFrame) -> bool:
    return bool(
        _PLUMBING.match(frame.function)
        or _LIBC_FILE.match(frame.file)
        or (not frame.file and _LIBC_LIBRARY.search(frame.library))
    )


@dataclass(frozen=True, kw_only=True)
class Stacks:
    """Every thread's stacks of one group (or why some are missing)."""

    threads: tuple[ThreadStack, ...] = ()
    problems: tuple[str, ...] = ()  # one line each, e.g. "gdb cannot attach to 123: ..."
    python: bool = False  # py-bt was asked for (a libpython.py was found)

    def summary(self) -> str:
        """'main thread in lock_PyThread_acquire_lock (threading.py:wait); thread 2 in take_gil'."""
        pids = list(dict.fromkeys(t.pid for t in self.threads))
        parts = []
        for index, pid in enumerate(pids, 1):
            groups: dict[str, list[str]] = {}
            threads = sorted((t for t in self.threads if t.pid == pid), key=_thread_order)
            for thread in threads:
                groups.setdefault(thread.innermost(), []).append(thread.label)
            prefix = f"process {index}: " if len(pids) > 1 else ""
            parts += [f"{prefix}{_labels(labels)} in {where}" for where, labels in groups.items()]
        text = "; ".join(parts)
        return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "…"

    def text(self) -> str:
        """Every frame, for the run's log and for --match."""
        lines = []
        for thread in sorted(self.threads, key=lambda t: (t.pid, _thread_order(t))):
            name = f' "{thread.name}"' if thread.name else ""
            lines.append(f"process {thread.pid}, {thread.label} (LWP {thread.tid}{name}):")
            for frame in thread.c_frames:
                where = f" at {frame.file}:{frame.line}" if frame.file else ""
                where += f" from {frame.library}" if frame.library else ""
                lines.append(f"  #{frame.number:<2} {frame.function}{where}")
            if thread.python_frames:
                lines.append("  Python, most recent call first:")
            for py in thread.python_frames:
                at = f'File "{py.file}", line {py.line}, in ' if py.file else ""
                lines.append(f"    {at}{py.function}")
        lines += [f"finbisect: {problem}" for problem in self.problems]
        return "\n".join(lines) + "\n" if lines else ""

    def advice(self) -> str | None:
        """One line for the user when no stack could be taken at all."""
        if self.threads or not self.problems:
            return None
        if any("not permitted" in p for p in self.problems):
            return (
                "gdb cannot attach to hung interpreters here (ptrace not permitted): run as "
                "root or with CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope to 0"
            )
        if all("No such process" in p for p in self.problems):
            return None  # it ended before gdb came: nothing to advise
        return self.problems[0]


def _thread_order(thread: ThreadStack) -> tuple[int, int]:
    return (0 if thread.tid == thread.pid else 1, thread.number)


def _labels(labels: Sequence[str]) -> str:
    if len(labels) > 1 and all(label.startswith("thread ") for label in labels):
        return "threads " + ", ".join(label.removeprefix("thread ") for label in labels)
    return ", ".join(labels)


def gdb_path() -> str | None:
    return shutil.which("gdb")


def find_libpython(interpreter: Path) -> Path | None:
    """The revision's own Tools/gdb/libpython.py, next to the built interpreter or above it."""
    for directory in [interpreter.parent, *interpreter.parent.parents][:3]:
        candidate = directory / "Tools" / "gdb" / "libpython.py"
        if candidate.is_file():
            return candidate
    return None


def _python_commands(libpython: Path | None) -> list[str]:
    if libpython is None:
        return []
    return [
        "-ex", f"echo \\n{_PY_MARK}\\n",
        "-ex", f"source {libpython}",
        "-ex", "thread apply all py-bt",
    ]  # fmt: skip


def _gdb_env() -> dict[str, str]:
    """gdb's own Python must not load another installation's modules."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "DEBUGINFOD_URLS"
    }


def attach(
    pids: Iterable[int],
    *,
    log_dir: Path,
    stem: str,
    libpython: Path | None = None,
    timeout: float = GDB_TIMEOUT,
    cancel: threading.Event | None = None,
) -> Stacks:
    """Every thread's stacks of the processes `pids`, one gdb session each.

    gdb's own output is kept as `<log_dir>/<stem>-<pid>.log`.
    """
    gdb = gdb_path()
    if gdb is None:
        return Stacks(problems=(GDB_ADVICE,))
    threads: list[ThreadStack] = []
    problems: list[str] = []
    for pid in pids:
        argv = [gdb, "-p", str(pid), "-nx", "-batch", *_GDB_SETUP, "-ex", "thread apply all bt"]
        result = proc.run(
            [*argv, *_python_commands(libpython)],
            cwd=log_dir,
            timeout=timeout,
            log_path=log_dir / f"{stem}-{pid}.log",
            env=_gdb_env(),
            grace=1.0,
            cancel=cancel,
        )
        found = parse_gdb(_read(result.log_path), pid)
        threads += found
        if not found:
            problems.append(f"no stacks of process {pid}: {_gdb_problem(result)}")
    return Stacks(threads=tuple(threads), problems=tuple(problems), python=libpython is not None)


def _read(path: Path) -> str:
    return path.read_bytes()[: 16 * 1024 * 1024].decode("utf-8", errors="replace")


def _gdb_problem(result: proc.ProcResult) -> str:
    if result.timed_out:
        return f"gdb gave no answer within {GDB_TIMEOUT:g} s"
    for line in result.output.splitlines():
        if "ptrace" in line or "Could not attach" in line or "No such process" in line:
            return "gdb: " + line.strip()
    return f"gdb exited with status {result.returncode} (see {result.log_path.name})"


def parse_gdb(text: str, pid: int | None = None) -> tuple[ThreadStack, ...]:
    """Threads of `thread apply all bt` (then, after our marker, py-bt) output."""
    if text.startswith("+ "):  # proc's command line, which names the marker too
        text = text.partition("\n")[2]
    c_part, _, py_part = text.partition(f"\n{_PY_MARK}\n")
    c_frames, headers = _sections(c_part, _parse_c)
    py_frames, _ = _sections(py_part, _parse_py)
    if pid is None:  # run under gdb: gdb's thread 1 is the process's main thread
        pid = headers[1][0] if 1 in headers else min((t for t, _ in headers.values()), default=0)
    stacks = [
        ThreadStack(
            pid=pid,
            tid=tid,
            number=number,
            name=name,
            c_frames=tuple(c_frames.get(number, ())),
            python_frames=tuple(py_frames.get(number, ())),
        )
        for number, (tid, name) in headers.items()
    ]
    return tuple(sorted(stacks, key=_thread_order))


def _sections(
    text: str, parse: Callable[[str], _T | None]
) -> tuple[dict[int, list[_T]], dict[int, tuple[int, str]]]:
    """Items per gdb thread number, and each thread's (LWP, name) from its header."""
    items: dict[int, list[_T]] = {}
    headers: dict[int, tuple[int, str]] = {}
    current: int | None = None
    for line in text.splitlines():
        header = _THREAD.match(line)
        if header is not None:
            current = int(header.group(1))
            detail = header.group(2)
            lwp = re.search(r"(?:LWP|process) (\d+)", detail)
            name = re.search(r'"(.*)"', detail)
            headers[current] = (int(lwp.group(1)) if lwp else 0, name.group(1) if name else "")
            items.setdefault(current, [])
        elif current is not None and (item := parse(line)) is not None:
            items[current].append(item)
    return items, headers


def _parse_c(line: str) -> CFrame | None:
    match = _FRAME.match(line)
    if match is None:
        return None
    number, function, file, lineno, library = match.groups()
    return CFrame(
        number=int(number),
        function=function,
        file=file or "",
        line=int(lineno) if lineno else None,
        library=library or "",
    )


def _parse_py(line: str) -> PyFrame | None:
    if (match := _PY_FILE.match(line)) is not None:
        file, lineno, function = match.groups()
        return PyFrame(function=function, file=file, line=None if lineno == "?" else int(lineno))
    if (match := _PY_BUILTIN.match(line)) is not None:
        return PyFrame(function=match.group(1))
    return None


@dataclass(frozen=True, kw_only=True)
class GdbRun:
    """A repro run under gdb from the start: how it ended, and its stacks if it stopped."""

    result: proc.ProcResult  # gdb's run (its log holds the repro's output too)
    stacks: Stacks
    signal: str | None  # "SIGSEGV": the signal that stopped or killed the repro
    exit_code: int | None  # its exit status when it exited


def run_under_gdb(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    libpython: Path | None = None,
    cancel: threading.Event | None = None,
) -> GdbRun:
    """Run `argv` under gdb; when a signal stops it, every thread's stacks."""
    gdb = gdb_path()
    if gdb is None:
        raise FileNotFoundError(GDB_ADVICE)
    quiet = ("SIGPIPE", "SIG32", "SIG33", "SIGALRM", "SIGCHLD", "SIGUSR1", "SIGUSR2")
    handle = [arg for sig in quiet for arg in ("-ex", f"handle {sig} nostop noprint pass")]
    gdb_env = {k: v for k, v in (env or os.environ).items() if k != "DEBUGINFOD_URLS"}
    result = proc.run(
        [
            gdb, "-nx", "-batch", *_GDB_SETUP, *handle, "-ex", "run",
            "-ex", "thread apply all bt", *_python_commands(libpython), "--args", *argv,
        ],
        cwd=cwd,
        timeout=timeout,
        log_path=log_path,
        env=gdb_env,
        cancel=cancel,
    )  # fmt: skip
    text = _read(log_path)
    caught, exited = _CAUGHT.search(text), _EXITED.search(text)
    signal = caught or _TERMINATED.search(text)
    threads = parse_gdb(text) if caught else ()
    problems = () if threads or not caught else ("gdb showed no stack of the stopped repro",)
    return GdbRun(
        result=result,
        stacks=Stacks(threads=threads, problems=problems, python=libpython is not None),
        signal=signal.group(1) if signal else None,
        exit_code=None if exited is None else int(exited.group(3) or "0", 8),
    )
