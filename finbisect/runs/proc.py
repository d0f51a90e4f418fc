"""The one runner for every child process (builds and repro runs).

Each child gets its own session (so its own process group), stdin closed, a
timeout always, and its combined output streamed to a log file that starts
with a `+ cmd` line. When the child ends, times out, or we are interrupted,
the whole group is killed (TERM, a short grace, KILL) so that a hung
interpreter's threads, children and grandchildren never outlive the step.
A `watch` hook may end the wait early (a deadlock), and `on_hang` may look at
a hung group (its stacks) before it is killed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CaptureResult", "ProcResult", "capture", "kill_group", "run", "run_shell"]

_HEAD_BYTES = 64 * 1024  # output kept from the start of the log
_TAIL_BYTES = 256 * 1024  # and from its end: crash reports are printed last
_WATCH_INTERVAL = 0.25  # seconds between two calls of a `watch` hook


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
    # Ctrl-C (SIGTERM, SIGHUP) is held back and acted on in _wait, never inside Popen or
    # during the kill: a child is never left running unseen (see _DeferredInterrupts).
    with _DeferredInterrupts() as interrupts, log_path.open("wb") as log:
        log.write(f"+ {display or shlex.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
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
            raise
        # Always: the leader may be gone while daemon children linger.
        kill_group(child, grace=grace)
        duration = time.monotonic() - start
        timed_out = not exited
        if timed_out:
            done = reason or f"timed out after {timeout:g} s"
            log.write(f"\nfinbisect: {done}; process group killed\n".encode())
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
    interrupts: _DeferredInterrupts,
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


# --- capture: short children whose output is data (git) --------------------------------

_STDERR_TAIL_CHARS = 64 * 1024  # stderr kept from its end: tools print the reason last


@dataclass(frozen=True, kw_only=True)
class CaptureResult:
    """A finished `capture`: the child's whole stdout and the end of its stderr."""

    argv: tuple[str, ...]
    returncode: int | None  # None when a signal ended it or it timed out
    signal: int | None  # the signal that ended it (ours, if it timed out)
    timed_out: bool
    duration: float  # seconds
    stdout: str  # everything the child wrote, never cut
    stderr: str  # its last 64 KiB

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def last_error_line(self) -> str:
        """The last non-blank line of stderr ('' if none): where tools put the reason."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def capture(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    errors: str = "replace",
    grace: float = 2.0,
    cancel: threading.Event | None = None,
) -> CaptureResult:
    """Run `argv` with its output captured in memory; never raises for the child's failures.

    As with `run`: its own session, a timeout always, and its whole group killed
    when it ends, times out, or we are interrupted (Ctrl-C, or `cancel` set from
    another thread, kills the group and raises KeyboardInterrupt). stdin is
    `input`, or closed. stdout comes back whole however long it is (a rev-list
    of 100,000 commits is a few MB; callers parse it, so it is never cut);
    stderr keeps its last 64 KiB. Both are decoded as UTF-8 with `errors`. If
    the child exits but something it left behind holds its output open,
    reading stops `grace` seconds later. A program that cannot be started is
    returncode 127 with the reason in stderr.
    """
    start = time.monotonic()
    # Ctrl-C and SIGTERM are held back for the whole call and acted on where it is safe
    # (see _DeferredInterrupts); leaving the block raises them, the group already dead.
    with _DeferredInterrupts() as interrupts:
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:  # not found, not executable, no such cwd: it never ran
            return CaptureResult(
                argv=tuple(argv),
                returncode=127,
                signal=None,
                timed_out=False,
                duration=0.0,
                stdout="",
                stderr=f"cannot run {argv[0]}: {exc.strerror}\n",
            )
        data = input.encode() if isinstance(input, str) else input
        try:
            stdout, stderr, timed_out = _capture_output(
                child, data, start + timeout, grace, interrupts=interrupts, cancel=cancel
            )
        except BaseException:  # Ctrl-C or anything else: leave nothing running
            kill_group(child, grace=grace)
            _drain(child, grace)
            raise
    code = child.returncode
    return CaptureResult(
        argv=tuple(argv),
        returncode=None if timed_out or code is None or code < 0 else code,
        signal=-code if code is not None and code < 0 else None,
        timed_out=timed_out,
        duration=time.monotonic() - start,
        stdout=stdout.decode("utf-8", errors=errors),
        stderr=stderr.decode("utf-8", errors=errors)[-_STDERR_TAIL_CHARS:],
    )


def _capture_output(
    child: subprocess.Popen[bytes],
    data: bytes | None,
    deadline: float,
    grace: float,
    *,
    interrupts: _DeferredInterrupts,
    cancel: threading.Event | None,
) -> tuple[bytes, bytes, bool]:
    """(stdout, stderr, timed out) of `child`, its group killed afterwards in every case.

    Popen.communicate keeps what it read across timeouts, so it is called in
    short slices: between them, a held-back Ctrl-C or `cancel` is acted on
    (KeyboardInterrupt), and a leader that has exited while its pipes stay open (a lingering
    descendant) is noticed.
    """
    leader_gone_at: float | None = None
    timed_out = False
    while True:
        now = time.monotonic()
        if now >= deadline:
            timed_out = child.poll() is None
            break
        if interrupts.pending or (cancel is not None and cancel.is_set()):
            raise KeyboardInterrupt
        if child.poll() is not None:
            leader_gone_at = leader_gone_at or now
            if now - leader_gone_at > grace:
                break  # a descendant holds the pipes: kill_group below ends it
        try:
            out, err = child.communicate(data, timeout=min(deadline - now, 0.1))
        except subprocess.TimeoutExpired:
            data = None  # already handed over; communicate keeps feeding it
            continue
        kill_group(child, grace=grace)  # always: daemon children may linger
        return out, err, False
    # Timed out, or the pipes outlived the leader: kill the group, keep what was read.
    kill_group(child, grace=grace)
    out, err = _drain(child, grace)
    return out, err, timed_out


def _drain(child: subprocess.Popen[bytes], grace: float) -> tuple[bytes, bytes]:
    """What is left in the pipes of a killed child, waiting at most `grace` for EOF."""
    out: bytes | None = None
    err: bytes | None = None
    try:
        out, err = child.communicate(timeout=grace)
    except subprocess.TimeoutExpired as exc:  # held open outside the group: keep what came
        out, err = exc.output, exc.stderr
    except (ValueError, OSError):
        pass
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return out or b"", err or b""


class _DeferredInterrupts:
    """Hold back SIGINT and SIGTERM from creation until `deliver()`; `pending` says if any came.

    Python raises KeyboardInterrupt at whatever bytecode the main thread is at,
    and two such places in the standard library lose a child:

    - in `subprocess.Popen()`, after the fork, while it waits for the exec: the
      child runs on with nobody holding its Popen to kill it (with a hanging
      repro, a hung interpreter group that outlives the hunt);
    - in `Popen.wait()`/`poll()` between taking the Popen's internal waitpid lock
      and the `try` that releases it: every later wait() blocks forever (so
      `kill_group` hangs and the hunt never exits).

    Holding the handlers back, and polling `pending` where it is safe to act,
    closes both. Only Python-level handlers are held, and only in the main
    thread (the only one Python runs them in); the signal mask is untouched, so
    children inherit nothing unusual. `deliver()` puts the handlers back and
    raises each held-back signal once, so the usual handler (KeyboardInterrupt)
    runs there; as a context manager, on leaving the block.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._saved: dict[int, signal._HANDLER] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            for sig in self._SIGNALS:
                if callable(signal.getsignal(sig)):
                    self._saved[sig] = signal.signal(sig, self._hold)
        except BaseException:  # a signal not yet held came meanwhile: undo, let it out
            self.deliver()
            raise

    def _hold(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def __enter__(self) -> _DeferredInterrupts:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deliver()

    def deliver(self) -> None:
        """Put the handlers back, then raise each held-back signal (once) to ourselves."""
        saved, self._saved = self._saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        pending, self._pending = list(dict.fromkeys(self._pending)), []
        for sig in pending:
            signal.raise_signal(sig)  # the handler runs now: KeyboardInterrupt, usually
