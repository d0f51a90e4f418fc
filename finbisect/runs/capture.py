"""Short children whose output is data (git): run, capture in memory, kill the group after.

Same rules as proc.run: its own session, stdin closed (or `input`), a timeout,
the whole group killed when it ends, times out or is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from finbisect.runs import reaper
from finbisect.runs.interrupts import DeferredInterrupts
from finbisect.runs.proc import kill_group

__all__ = ["CaptureResult", "capture"]


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
    # (see DeferredInterrupts); leaving the block raises them, the group already dead.
    with DeferredInterrupts() as interrupts:
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                # marked, so that a finbisect taking over a dead one's lock ends it
                env={**(env if env is not None else os.environ), reaper.MARK: reaper.new_mark()},
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
    interrupts: DeferredInterrupts,
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
