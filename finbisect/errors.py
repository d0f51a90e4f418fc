"""The one exception family. Library code raises; only cli exits.

Each subclass carries the exit code the README documents. A crash, hang or
failed build of the thing under test is *data* (an Outcome, a skip), never one
of these.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "EndpointError",
    "FinbisectError",
    "GitError",
    "HuntInterruptedError",
    "InconclusiveError",
    "RegressionFoundError",
    "UsageError",
]


class FinbisectError(Exception):
    """Base: a one-line message for stderr and the process exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(FinbisectError):
    """Bad option or value, bad regex, missing repro."""

    exit_code = 2


class GitError(FinbisectError):
    """Not a repository, unknown revision, unrelated revisions, good == bad."""

    exit_code = 3


class EndpointError(FinbisectError):
    """The endpoints did not show what --good/--bad claim."""

    exit_code = 4


class InconclusiveError(FinbisectError):
    """The answer is one of several commits, or the budget ran out first."""

    exit_code = 5


class BuildError(FinbisectError):
    """Build tooling missing, or an endpoint does not build."""

    exit_code = 6


class RegressionFoundError(FinbisectError):
    """`compare`: revision B shows a symptom that A does not."""

    exit_code = 7


class HuntInterruptedError(FinbisectError):
    """Ctrl-C: children killed, cache left usable."""

    exit_code = 130
