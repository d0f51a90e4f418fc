"""The one exception family and the exit codes. Library code raises; only cli exits.

Each FinbisectError subclass carries the exit code the README documents. A
crash, hang or failed build of the thing under test is *data* (an Outcome, a
skip), never one of these. Answers that are not errors (an inconclusive hunt,
a regression found by `compare`) are exit codes the cli returns, not exceptions.
"""

from __future__ import annotations

import enum

__all__ = [
    "BuildError",
    "ClusterError",
    "EndpointError",
    "ExitCode",
    "FinbisectError",
    "GitError",
    "HuntInterruptedError",
    "MachineError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """Every exit status of the finbisect command (README "Exit codes")."""

    OK = 0
    USAGE = 2  # bad option or value, bad regex, missing repro, busy cache entry
    GIT = 3  # not a repository, unknown revision, unrelated revisions, good == bad
    ENDPOINTS = 4  # the endpoints did not show what --good/--bad claim
    INCONCLUSIVE = 5  # several candidates, or the run budget spent first
    CANNOT_BUILD = 6  # tooling missing, an endpoint does not build or lacks the flavour
    REGRESSED = 7  # compare: B shows a symptom that A does not
    MACHINE = 8  # the machine failed a build: disk full, out of memory; nothing cached
    CLUSTER = 9  # --dask-scheduler: the cluster went away or cannot work; the hunt saved
    INTERRUPTED = 130  # Ctrl-C, SIGTERM or SIGHUP: children killed, state kept


class FinbisectError(Exception):
    """Base: a one-line message for stderr and the process exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(FinbisectError):
    """Bad option or value, bad regex, missing repro."""

    exit_code = ExitCode.USAGE


class GitError(FinbisectError):
    """Not a repository, unknown revision, unrelated revisions, good == bad."""

    exit_code = ExitCode.GIT


class EndpointError(FinbisectError):
    """The endpoints did not show what --good/--bad claim."""

    exit_code = ExitCode.ENDPOINTS


class BuildError(FinbisectError):
    """Build tooling missing, or an endpoint does not build."""

    exit_code = ExitCode.CANNOT_BUILD


class MachineError(FinbisectError):
    """The machine, not the revision, failed a build or a store (a full disk, no memory).

    Nothing is cached as a verdict; the hunt is saved as interrupted, so running the
    same command again, once the machine is mended, resumes it.
    """

    exit_code = ExitCode.MACHINE


class ClusterError(MachineError):
    """The Dask cluster went away or cannot do the work (--dask-scheduler).

    Like any machine failure: the hunt is saved as interrupted, and the same command
    resumes it, on the cluster or (without --dask-scheduler) locally.
    """

    exit_code = ExitCode.CLUSTER


class HuntInterruptedError(FinbisectError):
    """Ctrl-C: children killed, cache left usable."""

    exit_code = ExitCode.INTERRUPTED
