"""Insert one commit into a copy of a linear history, with reproducible shas.

Shared by benchmarks/build_speed.py (an injected Py_FatalError on 3.13),
tools/inject-commit and the opt-in bpo-21963 hunt test (the bpo-1856 backport
on 2.7): clone `source`, commit a change after the commit at index K (oldest
first), cherry-pick the later commits on top with a fixed identity and date,
so the same K and change give the same shas in every run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

__all__ = ["IDENTITY", "git", "inject_commit", "patch_applier", "replace_once"]

IDENTITY = {
    "GIT_AUTHOR_NAME": "build_speed benchmark",
    "GIT_AUTHOR_EMAIL": "bench@finbisect.invalid",
    "GIT_COMMITTER_NAME": "build_speed benchmark",
    "GIT_COMMITTER_EMAIL": "bench@finbisect.invalid",
    "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z",
}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **(env or {})}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=full
    )
    return done.stdout.strip()


def patch_applier(patch: Path) -> Callable[[Path], None]:
    """A change that applies `patch` with `git apply` (its header text is ignored)."""

    def apply(tree: Path) -> None:
        git(tree, "apply", str(patch.resolve()))

    return apply


def replace_once(target: Path, anchor: str, replacement: str) -> None:
    """A change's edit: `anchor`, found exactly once in `target`, becomes `replacement`."""
    text = target.read_text()
    if text.count(anchor) != 1:
        raise SystemExit(f"{target.name}: the anchor for the injection is not there exactly once")
    target.write_text(text.replace(anchor, replacement))


def inject_commit(
    source: Path,
    dest: Path,
    position: int,
    *,
    change: Callable[[Path], None],
    message: str,
    touched: list[str],
) -> tuple[list[str], str]:
    """Clone `source` to `dest` with `change` committed after commit `position`.

    `touched` are the files the change edits: a later commit touching one would
    make the cherry-picks conflict, so that is refused. Returns the new history's
    shas (oldest first) and the injected commit's sha.
    """
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True)
    shas = git(dest, "rev-list", "--reverse", "--first-parent", "HEAD").splitlines()
    if not 0 <= position < len(shas) - 1:
        raise SystemExit(f"position must be in 0..{len(shas) - 2} (history of {len(shas)})")
    later = shas[position + 1 :]
    touching = git(dest, "log", "--format=%h %s", f"{shas[position]}..HEAD", "--", *touched)
    if touching:
        raise SystemExit(f"a later commit touches {touched}; pick another position:\n{touching}")
    git(dest, "checkout", "-q", "-B", "injected", shas[position])
    change(dest)
    git(dest, "commit", "-q", "-am", message, env=IDENTITY)
    injected = git(dest, "rev-parse", "HEAD")
    if later:
        git(dest, "cherry-pick", "--allow-empty", *later, env=IDENTITY)
    new = git(dest, "rev-list", "--reverse", "--first-parent", "HEAD").splitlines()
    changed = set(git(dest, "diff", "--name-only", shas[-1], "HEAD").splitlines())
    if len(new) != len(shas) + 1 or not changed <= set(touched):
        raise SystemExit("the injected history is not the original plus one commit")
    return new, injected
