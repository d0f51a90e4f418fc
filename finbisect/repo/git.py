"""Running git: plain `git` commands through the process runner, under a timeout.

Every command runs through `runs.capture` with a timeout (`FETCH_TIMEOUT`
for clone and fetch, `CHECKOUT_TIMEOUT` for writing a work tree,
`PLUMBING_TIMEOUT` for the rest), in its own process group that is killed
when it times out or the hunt is interrupted: a git blocked on a lock is a
`GitError`, not a hung hunt. Each command names its repository by its working
directory alone (see `_REPOSITORY_ENV`), and never takes optional locks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from finbisect.errors import GitError
from finbisect.runs import capture as proc

__all__ = [
    "CHECKOUT_TIMEOUT",
    "FETCH_TIMEOUT",
    "PLUMBING_TIMEOUT",
    "git",
    "reason",
    "run_git",
]

# Generous but finite: a git that takes longer is stuck (on a lock, say), not slow.
FETCH_TIMEOUT = 600.0  # clone and fetch: the first clone of CPython copies ~1 GB of objects
CHECKOUT_TIMEOUT = 600.0  # a first checkout writes the whole tree
PLUMBING_TIMEOUT = 60.0  # everything else: reads of history, trees and blobs

# Read-only access to the user's repository: no index refresh, no gc, no prompts.
_READ_ONLY_ENV = {
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTO_GC": "0",
}
# `git rev-parse --local-env-vars`: what can point git at another repository.
_REPOSITORY_ENV = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    }
)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_ENV}
    env.update(_READ_ONLY_ENV)
    if extra:
        env.update(extra)
    return env


def run_git(
    *args: str,
    cwd: Path,
    timeout: float | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> proc.CaptureResult:
    """`git ARGS` in `cwd`, whatever its exit status; a timeout is a GitError.

    `timeout` defaults to `PLUMBING_TIMEOUT` (looked up at each call).
    """
    timeout = PLUMBING_TIMEOUT if timeout is None else timeout
    result = proc.capture(
        ["git", *args],
        cwd=cwd,
        timeout=timeout,
        env=_env(env),
        input=input,
        errors="surrogateescape",  # paths and file contents as git has them, like the OS
    )
    if result.timed_out:
        raise GitError(
            f"git {args[0]} took longer than {timeout:g} s in {cwd} and was killed "
            "(is another git holding a lock there?)"
        )
    if result.returncode == 127 and result.stderr.startswith("cannot run git"):
        raise GitError(f"{result.last_error_line} (is git installed and on PATH?)")
    return result


def git(
    *args: str,
    cwd: Path,
    timeout: float | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """The output of `git ARGS` in `cwd`; GitError with git's last stderr line if it fails."""
    result = run_git(*args, cwd=cwd, timeout=timeout, input=input, env=env)
    if not result.ok:
        raise GitError(f"git {args[0]} failed: {reason(result)}")
    return result.stdout


def reason(result: proc.CaptureResult) -> str:
    """git's last stderr line, without its "fatal: " or "error: " prefix."""
    line = result.last_error_line
    if not line:
        return f"exit status {result.returncode}" if result.signal is None else "killed"
    return re.sub(r"^(fatal|error):\s*", "", line)
