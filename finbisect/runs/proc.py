"""The one runner for every child process (builds and repro runs).

Each child gets its own session (so its own process group), stdin closed, a
timeout always, and its combined output streamed to a log file that starts
with a `+ cmd` line. When the child ends, times out, or we are interrupted,
the whole group is killed (TERM, a short grace, KILL) so that a hung
interpreter's threads, children and grandchildren never outlive the step.
A `watch` hook may end the wait early (a deadlock), and `on_hang` may look at
a hung group (its stacks) before it is killed. Work done ahead of need (a build
while the runs of another revision go) runs `in_background`: at the lowest CPU
priority, and killed as soon as it is no longer wanted.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from finbisect.runs import reaper
from finbisect.runs.interrupts import DeferredInterrupts

__all__ = ["ProcResult", "check_cancelled", "in_background", "kill_group", "run", "run_shell"]

_HEAD_BYTES = 64 * 1024  # output kept from the start of the log
_TAIL_BYTES = 256 * 1024  # and from its end: crash reports are printed last
_LOG_LIMIT = 1024 * 1024  # a longer log keeps only its head and tail on disk
_WATCH_INTERVAL = 0.1  # seconds between two calls of a `watch` hook (a /proc read: cheap)

# Started in front of a background child: nice 19 before the exec, so the child and
# everything it starts (make's compilers) inherit it from their first instruction.
_AT_LOWEST_PRIORITY = (
    "import os, sys\n"
    "os.nice(19)\n"
    "try:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'finbisect: cannot run {sys.argv[1]}: {exc.strerror}\\n')\n"
    "    os._exit(127)\n"
)
_background = threading.local()  # .cancel: the Event of this thread's `in_background` block


@contextlib.contextmanager
def in_background(cancel: threading.Event) -> Iterator[None]:
    """Children `run` starts from this thread inside the block get only the CPU time
    others leave (nice 19), and once `cancel` is set the one running is killed and
    `run` raises KeyboardInterrupt in this thread."""
    _background.cancel = cancel
    try:
        yield
    finally:
        del _background.cancel


def check_cancelled() -> None:
    """In an `in_background` block whose work is no longer wanted, raise KeyboardInterrupt
    (as `run` does): for long work of our own between children, such as storing a build's
    thousands of files, which no kill ends. Elsewhere, nothing."""
    cancel: threading.Event | None = getattr(_background, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise KeyboardInterrupt


@dataclass(frozen=True, kw_only=True)
class ProcResult:
    returncode: int | None  # None when a signal ended it or it timed out
    signal: int | None  # the signal that ended it (ours, if it timed out)
    timed_out: bool  # a hang: no exit within the timeout, or deadlocked
    duration: float  # seconds
    output: str  # head and tail of the combined stdout+stderr, bounded
    log_path: Path
    deadlocked: bool = False  # the `watch` hook ended the wait before the timeout
    hang_reason: str = ""  # "no exit within 60 s" or the watch's reason; "" unless timed_out

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    grace: float = 2.0,
    display: str | None = None,
    cancel: threading.Event | None = None,
    watch: Callable[[int], str | None] | None = None,
    on_hang: Callable[[int], str] | None = None,
) -> ProcResult:
    """Run `argv` to completion or timeout; never raises for the child's failures.

    `display` replaces the `+ cmd` line's text (for shell commands). Ctrl-C,
    or `cancel` set from another thread, kills the group and raises
    KeyboardInterrupt. `watch(pid)` is called about every quarter second while
    the child runs; a reason it returns ends the wait like a timeout, reported as
    `deadlocked`. `on_hang(pid)` is called for a hung group before it is killed;
    the text it returns is appended to the log.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    background: threading.Event | None = getattr(_background, "cancel", None)
    started = list(argv)
    if background is not None:
        cancel = cancel or background
        started = [sys.executable, "-I", "-S", "-c", _AT_LOWEST_PRIORITY, *argv]
    # Ctrl-C (SIGTERM, SIGHUP) is held back and acted on in _wait, never inside Popen or
    # during the kill: a child is never left running unseen (see DeferredInterrupts).
    child_env = dict(env if env is not None else os.environ)
    mark = child_env[reaper.MARK] = reaper.new_mark()  # setsid escapees keep it (reaper.py)
    with DeferredInterrupts() as interrupts, log_path.open("wb") as log:
        log.write(f"+ {display or shlex.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                started,
                cwd=cwd,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:  # not found, not executable: the child never ran
            log.write(f"finbisect: cannot run {argv[0]}: {exc.strerror}\n".encode())
            return ProcResult(
                returncode=127,
                signal=None,
                timed_out=False,
                duration=0.0,
                output=f"cannot run {argv[0]}: {exc.strerror}",
                log_path=log_path,
            )
        try:
            exited, reason = _wait(child, start + timeout, cancel, watch, interrupts)
            if not exited and on_hang is not None:
                log.write(on_hang(child.pid).encode())
                log.flush()
        except BaseException:  # Ctrl-C or anything else: leave nothing running
            kill_group(child, grace=grace)
            reaper.kill_marked(mark, grace=grace)
            raise
        # Always: the leader may be gone while daemon children linger, and a
        # descendant may have left the group (setsid): the mark finds it.
        kill_group(child, grace=grace)
        reaper.kill_marked(mark, grace=grace)
        duration = time.monotonic() - start
        timed_out = not exited
        if timed_out:
            done = reason or f"timed out after {timeout:g} s"
            log.write(f"\nfinbisect: {done}; process group killed\n".encode())
    _compact(log_path)
    code = child.returncode
    return ProcResult(
        returncode=None if timed_out or code < 0 else code,
        signal=-code if code is not None and code < 0 else None,
        timed_out=timed_out,
        duration=duration,
        output=_read_bounded(log_path),
        log_path=log_path,
        deadlocked=bool(reason),
        hang_reason=(reason or f"no exit within {timeout:g} s") if timed_out else "",
    )


def _wait(
    child: subprocess.Popen[bytes],
    deadline: float,
    cancel: threading.Event | None,
    watch: Callable[[int], str | None] | None,
    interrupts: DeferredInterrupts,
) -> tuple[bool, str]:
    """Wait for the child until `deadline` or `watch` says why not: (exited, that reason)."""
    next_watch = time.monotonic() + _WATCH_INTERVAL
    while True:
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            return child.poll() is not None, ""
        step = min(left, 0.1)
        if watch is not None:
            step = min(step, max(next_watch - now, 0.0))
        try:
            child.wait(timeout=step)
        except subprocess.TimeoutExpired:
            if interrupts.pending or (cancel is not None and cancel.is_set()):
                raise KeyboardInterrupt from None
            if watch is not None and time.monotonic() >= next_watch:
                next_watch = time.monotonic() + _WATCH_INTERVAL
                if (reason := watch(child.pid)) and child.poll() is None:
                    return False, reason
            continue
        return True, ""


def run_shell(
    command: str,
    *,
    cwd: Path,
    timeout: float,
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> ProcResult:
    """Run the user's own shell command (e.g. --build-cmd), as they wrote it."""
    return run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        timeout=timeout,
        log_path=log_path,
        env=env,
        display=command,
    )


def kill_group(child: subprocess.Popen[bytes], *, grace: float = 2.0) -> None:
    """TERM the child's process group, wait up to `grace`, then KILL it; reap the child."""
    pgid = child.pid  # start_new_session: the child leads its own group
    if not _signal_group(pgid, signal.SIGTERM):
        child.wait()
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if child.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    child.wait()
    # Members other than the leader are reparented to init, which reaps them;
    # wait until none is left so the caller may rely on "nothing running".
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed credentials; nothing more we may do
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # Zombies still count for killpg(0); treat a group of only zombies as gone.
    return any(_is_live_member(pid, pgid) for pid in _pids())


def _pids() -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return []


def _is_live_member(pid: int, pgid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Fields after the parenthesised command name: state ppid pgrp ...
    fields = stat.rsplit(")", 1)[-1].split()
    return len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z"


def _compact(path: Path) -> None:
    """Keep a long log's head and tail on disk, saying how much was cut (a repro that
    writes 200 MB per run must not fill the disk with its logs)."""
    try:
        size = path.stat().st_size
        if size <= _LOG_LIMIT:
            return
        with path.open("rb") as log:
            head = log.read(_HEAD_BYTES)
            log.seek(size - _TAIL_BYTES)
            tail = log.read()
        cut = size - len(head) - len(tail)
        staging = path.with_name(path.name + ".tmp")
        staging.write_bytes(head + f"\n[finbisect: {cut} bytes of output cut]\n".encode() + tail)
        staging.replace(path)
    except OSError:
        return  # a log we cannot shorten stays as it is


def _read_bounded(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as log:
        if size <= _HEAD_BYTES + _TAIL_BYTES:
            data = log.read()
        else:
            head = log.read(_HEAD_BYTES)
            log.seek(size - _TAIL_BYTES)
            data = head + b"\n[... output cut ...]\n" + log.read()
    return data.decode("utf-8", errors="replace")
