"""Find every process a child started, wherever it went, and end it.

A process group is not enough: a repro's child may call `setsid()` and leave
the group (and the session) for good. So every child finbisect starts carries
a mark in its environment, `FINBISECT_RUN=<owner>#<id>`, which its own
children, grandchildren and setsid escapees inherit; after the group is killed,
`kill_marked` finds the rest by that mark in /proc and kills them too.

The owner is the hunt's cache entry (its lock) while a hunt holds it, so the
next finbisect that takes the lock after one was killed (SIGKILL leaves no
chance to clean up) finds and ends what the dead one left: `end_leftovers`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["MARK", "end_leftovers", "kill_marked", "marked", "new_mark", "owned_by"]

MARK = "FINBISECT_RUN"
_owner = f"pid-{os.getpid()}"  # one hunt per process: a module setting, seen by every thread


@contextlib.contextmanager
def owned_by(owner: str) -> Iterator[None]:
    """Children started meanwhile are marked as `owner`'s (a hunt's cache entry)."""
    global _owner  # noqa: PLW0603 - process-wide on purpose (worker threads mark too)
    before, _owner = _owner, owner
    try:
        yield
    finally:
        _owner = before


def new_mark() -> str:
    """A mark for one child: its owner, and an id of its own."""
    return f"{_owner}#{uuid.uuid4().hex}"


def marked(prefix: str) -> list[int]:
    """Live processes whose environment holds a mark starting with `prefix`."""
    needle = f"{MARK}={prefix}".encode()
    found = []
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            except OSError:  # gone, or not ours to read
                continue
            if state != "Z" and any(v.startswith(needle) for v in environ.split(b"\0")):
                found.append(int(entry.name))
    return found


def kill_marked(prefix: str, *, grace: float = 2.0) -> int:
    """TERM every process marked `prefix`, KILL what is left after `grace`; how many."""
    pids = marked(prefix)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = [pid for pid in pids if pid in set(marked(prefix))]
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    return len(pids)


def end_leftovers(owner: str) -> int:
    """Kill what a dead finbisect holding `owner` left running; how many were found."""
    found = marked(f"{owner}#")
    if found:
        kill_marked(f"{owner}#")
    return len(found)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
