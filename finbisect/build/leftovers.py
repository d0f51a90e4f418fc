"""What a build stopped half-way leaves in a persistent tree, removed before the next.

make deletes the target it was writing when it is told to stop (TERM), but a
build stopped with KILL (a build ahead at nice 19 on a busy machine may not get
the CPU to stop within the grace) leaves a half-written object or interpreter
newer than its sources, which the next make trusts: "'python' is up to date",
then "./python: Permission denied", and a good revision reported as unbuildable.

So a build leaves a stamp beside its tree while its recipe runs and removes it
only when the recipe ended by itself and succeeded. The next build in that tree
first removes the untracked files written since the stamp's time (make makes
them again), then goes on as usual.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from finbisect.repo import git as gitcmd

__all__ = ["begin", "clear", "finish"]

_MARGIN_NS = 1_000_000_000  # file systems with coarse times: a second before counts too
_LS_FILES_TIMEOUT = 120.0


def _stamp(tree: Path) -> Path:
    return tree.with_name(tree.name + ".building")


def begin(tree: Path) -> None:
    """A build's recipe is about to run in `tree`."""
    _stamp(tree).write_text(str(time.time_ns()))


def finish(tree: Path) -> None:
    """The recipe ended by itself and built: nothing half-written is left."""
    _stamp(tree).unlink(missing_ok=True)


def clear(tree: Path) -> int:
    """Remove what an unfinished build left in `tree` (nothing when the last one
    finished); the number of files removed."""
    stamp = _stamp(tree)
    try:
        since = int(stamp.read_text()) - _MARGIN_NS
    except (OSError, ValueError):
        stamp.unlink(missing_ok=True)  # (unreadable: as if absent)
        return 0
    listed = gitcmd.run_git("ls-files", "-z", cwd=tree, timeout=_LS_FILES_TIMEOUT)
    tracked = set(listed.stdout.split("\0")) if listed.ok else None
    removed = 0
    for root, dirs, files in os.walk(tree):  # (Path.walk is 3.12+)
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(root) / name
            if tracked is None or str(path.relative_to(tree)) in tracked:
                continue  # the checkout's: sources are not make's to remake
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime_ns >= since:
                    path.unlink()
                    removed += 1
    stamp.unlink(missing_ok=True)
    return removed
