"""Taking over a cache entry: what a finbisect that died there (SIGKILL) left behind ends.

The entry's lock is held (repo.gitrepo.locked_workspace), so nothing else runs
there: processes still marked with this entry (runs.reaper) are a dead hunt's,
its scratch directories and its list of builds in use are stale.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from finbisect.build.cache import forget_in_use
from finbisect.repo.gitrepo import Workspace
from finbisect.runs import reaper

__all__ = ["claim", "scratch_dir"]


def scratch_dir(workspace: Workspace) -> Path:
    """Where runs make their fresh directories (emptied when the entry is claimed)."""
    return workspace.root / "scratch"


@contextmanager
def claim(workspace: Workspace, note: Callable[[str], None]) -> Iterator[None]:
    """Clean up after a dead predecessor; mark this hunt's children as the entry's."""
    owner = str(workspace.root)
    if left := reaper.end_leftovers(owner):
        note(f"ended {left} processes left running by a finbisect that was killed")
    forget_in_use(workspace.root)
    shutil.rmtree(scratch_dir(workspace), ignore_errors=True)
    with reaper.owned_by(owner):
        yield
