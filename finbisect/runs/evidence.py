"""The symptom caught in the act at the answer: every thread's stacks, as JSON.

`capture_evidence` runs the repro at one revision until it shows the symptom
once more under observation: a crash under gdb from the start (the signal stops
it, gdb prints every thread's stacks), a hang as usual with the deadlock watch
and gdb attached before the group is killed. `culprit_frames` then says whether
the culprit's diff touches a function on those stacks ("the culprit changes
take_gil(), frame #6 of thread 2").
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from finbisect.models import OutcomeKind
from finbisect.runs import proc, procfs, stacks
from finbisect.runs.stacks import CFrame, PyFrame, Stacks, ThreadStack

__all__ = [
    "Evidence",
    "FrameHit",
    "capture_evidence",
    "changed_functions",
    "culprit_frames",
    "hang_evidence",
]

EVIDENCE_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One run at `sha` that showed the symptom, with every thread's stacks."""

    sha: str
    kind: OutcomeKind  # crash or hang
    signature: str  # "killed by SIGSEGV: main thread in take_gil", "deadlocked: ..."
    threads: tuple[ThreadStack, ...]
    log: str  # the run's log (and gdb's, next to it)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": EVIDENCE_VERSION,
            "sha": self.sha,
            "kind": self.kind.value,
            "signature": self.signature,
            "threads": [
                {
                    "pid": t.pid,
                    "tid": t.tid,
                    "number": t.number,
                    "name": t.name,
                    "label": t.label,
                    "c_frames": [
                        {"number": f.number, "function": f.function, "file": f.file,
                         "line": f.line, "library": f.library}
                        for f in t.c_frames
                    ],
                    "python_frames": [
                        {"function": f.function, "file": f.file, "line": f.line}
                        for f in t.python_frames
                    ],
                }
                for t in self.threads
            ],
            "log": self.log,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        """Inverse of to_json; ValueError for another version or a malformed document."""
        if data.get("version") != EVIDENCE_VERSION:
            raise ValueError(f"unknown evidence version {data.get('version')!r}")
        try:
            return cls(
                sha=str(data["sha"]),
                kind=OutcomeKind(data["kind"]),
                signature=str(data["signature"]),
                threads=tuple(
                    ThreadStack(
                        pid=int(t["pid"]),
                        tid=int(t["tid"]),
                        number=int(t["number"]),
                        name=str(t["name"]),
                        c_frames=tuple(CFrame(**f) for f in t["c_frames"]),
                        python_frames=tuple(PyFrame(**f) for f in t["python_frames"]),
                    )
                    for t in data["threads"]
                ),
                log=str(data["log"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed evidence: {exc}") from exc


def capture_evidence(
    *,
    sha: str,
    kind: OutcomeKind,
    interpreter: Path,
    repro: Path,
    timeout: float,
    logs: Path,
    env: Mapping[str, str],
    hang_grace: float | None = 1.0,
    cancel: threading.Event | None = None,
) -> Evidence | None:
    """One observed run at `sha`; the Evidence if it showed `kind` with stacks, else None.

    Needs gdb (`stacks.gdb_path()`; without it: None). Flaky symptoms may need several calls.
    """
    if kind not in (OutcomeKind.CRASH, OutcomeKind.HANG) or stacks.gdb_path() is None:
        return None
    libpython = stacks.find_libpython(interpreter)
    workdir = Path(tempfile.mkdtemp(prefix="finbisect-evidence-"))
    log_path = logs / f"evidence-{sha[:12]}.log"
    argv = [str(interpreter), str(repro)]
    try:
        if kind is OutcomeKind.CRASH:
            run = stacks.run_under_gdb(
                argv,
                cwd=workdir,
                timeout=timeout,
                log_path=log_path,
                env=env,
                libpython=libpython,
                cancel=cancel,
            )
            if run.signal is None or not run.stacks.threads:
                return None
            signature = f"killed by {run.signal}: {run.stacks.summary()}"
            return Evidence(
                sha=sha,
                kind=kind,
                signature=signature,
                threads=run.stacks.threads,
                log=str(log_path),
            )
        taken: list[Stacks] = []

        def on_hang(pid: int) -> str:
            found = stacks.attach(
                procfs.group_pids(pid),
                log_dir=logs,
                stem=f"gdb-evidence-{sha[:12]}",
                libpython=libpython,
                cancel=cancel,
            )
            taken.append(found)
            return "\nfinbisect: stacks of the hung process group (gdb):\n" + found.text()

        result = proc.run(
            argv,
            cwd=workdir,
            timeout=timeout,
            log_path=log_path,
            env=env,
            cancel=cancel,
            watch=procfs.DeadlockWatch(hang_grace) if hang_grace and procfs.supported() else None,
            on_hang=on_hang,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not result.timed_out or not taken:
        return None
    return hang_evidence(sha, taken[0], result)


def hang_evidence(sha: str, found: Stacks, run: proc.ProcResult) -> Evidence | None:
    """A hung run's stacks as evidence, its log the run's (None when gdb saw no thread)."""
    if not found.threads:
        return None
    head = "deadlocked" if run.deadlocked else run.hang_reason
    return Evidence(
        sha=sha,
        kind=OutcomeKind.HANG,
        signature=f"{head}: {found.summary()}",
        threads=found.threads,
        log=str(run.log_path),
    )


@dataclass(frozen=True, kw_only=True)
class FrameHit:
    """A function the culprit changes, found on a thread's stack."""

    function: str
    file: str  # the changed file
    thread: str  # "main thread", "thread 2"
    frame: int  # gdb's #N for a C frame; for a Python frame its depth, 0 innermost
    python: bool = False

    def describe(self) -> str:
        what = "Python frame" if self.python else "frame"
        thread = "the main thread" if self.thread == "main thread" else self.thread
        return f"the culprit changes {self.function}(), {what} #{self.frame} of {thread}"


_DIFF_FILE = re.compile(r"^\+\+\+ (?:b/)?(.+?)\s*$")
_OLD_FILE = re.compile(r"^--- (?:a/)?(.+?)\s*$")
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?(.*)$")
_PY_DEF = re.compile(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")
# A C definition's name starts a line in CPython's style ("take_gil(PyThreadState *tstate)"),
# or follows its type on one line ("static void take_gil(...)"); calls are indented.
_C_DEF = re.compile(r"^(?:[A-Za-z_][\w \t\*]*?[ \t\*])?([A-Za-z_]\w*)\s*\([^;]*$")
_NOT_NAMES = frozenset({"if", "for", "while", "switch", "return", "sizeof", "else", "do"})


def _defined(line: str, python: bool) -> str | None:
    """The function a source line starts the definition of, if any."""
    if python:
        match = _PY_DEF.match(line)
    elif line[:1].isalpha() or line[:1] == "_":
        match = _C_DEF.match(line)
    else:
        return None
    if match is None or match.group(1) in _NOT_NAMES:
        return None
    return match.group(1)


def changed_functions(diff: str) -> tuple[tuple[str, str], ...]:
    """(file, function) pairs a unified diff changes: from hunk headers and definitions."""
    found: dict[tuple[str, str], None] = {}
    path, old_path, current = "", "", None
    for line in diff.splitlines():
        if (old := _OLD_FILE.match(line)) is not None and not line.startswith("--- -"):
            old_path = old.group(1)
            continue
        if (new := _DIFF_FILE.match(line)) is not None:
            path = old_path if new.group(1) == "/dev/null" else new.group(1)
            continue
        python = path.endswith(".py")
        if (hunk := _HUNK.match(line)) is not None:
            current = _defined(hunk.group(1), python) or _c_header_name(hunk.group(1), python)
            continue
        if not line or line[0] not in " +-" or not path:
            continue
        if (name := _defined(line[1:], python)) is not None:
            current = name
        if line[0] in "+-" and current is not None:
            found[path, current] = None
    return tuple(found)


def _c_header_name(context: str, python: bool) -> str | None:
    """git's hunk context for C without a diff driver: the last line starting with a letter."""
    if python:
        return None
    match = re.search(r"([A-Za-z_]\w*)\s*\(", context)
    return match.group(1) if match and match.group(1) not in _NOT_NAMES else None


def culprit_frames(diff: str, evidence: Evidence) -> tuple[FrameHit, ...]:
    """The innermost frame of each thread in each function the culprit's diff changes
    (a recursive interpreter loop is on a stack many times: once is enough to say)."""
    changed = changed_functions(diff)
    hits: list[FrameHit] = []
    for thread in evidence.threads:
        seen: set[str] = set()
        frames = [(f.number, f.function, f.file, False) for f in thread.c_frames]
        python = [f for f in thread.python_frames if f.file]
        frames += [(depth, f.function, f.file, True) for depth, f in enumerate(python)]
        for number, function, file, is_python in frames:
            if function in seen:
                continue
            found = [
                FrameHit(
                    function=function,
                    file=path,
                    thread=thread.label,
                    frame=number,
                    python=is_python,
                )
                for path, name in changed
                if name == function and _same_file(file, path)
            ]
            if found:
                seen.add(function)
                hits += found
    return tuple(hits)


def _same_file(frame_file: str, diff_path: str) -> bool:
    """gdb's 'Python/ceval_gil.c', './Modules/x.c' or an absolute path vs the diff's path."""
    if not frame_file:
        return True  # no location: the name alone
    a = PurePosixPath(frame_file.removeprefix("./")).parts
    b = PurePosixPath(diff_path).parts
    n = min(len(a), len(b))
    return a[-n:] == b[-n:]
