"""What travels between the client and a worker: the jobs, and what they gave back.

Plain frozen data (pickled by Dask). A worker's own paths (its logs, its
cache) appear only as text for people; nothing on the client opens them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from finbisect.build.config import BuildConfig
from finbisect.cluster.artifact import Artifact
from finbisect.models import Outcome, OutcomeKind
from finbisect.runs.evidence import Evidence

__all__ = [
    "BuildJob", "Built", "Bundle", "History", "HistoryVia", "Ran", "Request", "RunJob", "Visit",
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Bundle:
    """A `git bundle` holding every commit the hunt may build; fetched by the workers that
    cannot read the client's clone."""

    digest: str  # sha256 of `data`: a worker unbundles each bundle once
    data: bytes
    shas: tuple[str, ...]  # the commits it holds the history of (the hunt's ends)


@dataclass(frozen=True, kw_only=True)
class History:
    """Where a worker finds the hunt's history: a path on the client's machine, else the
    bundle (a task's result on the cluster, published under a name: fetched only when
    needed)."""

    digest: str  # the bundle's
    shas: tuple[str, ...]
    path: str  # the client's clone (a worker on the same machine fetches from it)
    refs: tuple[str, ...]  # the clone's refs naming `shas` (what the bundle holds)
    bundle_dataset: str  # the name the bundle's future is published under


class HistoryVia(Enum):
    """How a worker took a hunt's history."""

    HAD = "had"  # its own repository had the commits (an earlier hunt's)
    PATH = "path"  # fetched from the client's clone: the same machine (or a shared disk)
    BUNDLE = "bundle"  # the bundle, over the network


@dataclass(frozen=True, kw_only=True)
class BuildJob:
    sha: str
    config: BuildConfig  # the client's: same flavour, flags, modules the repro imports
    cache_size: int  # the client's --cache-size: the worker's cache is kept within it


@dataclass(frozen=True, kw_only=True)
class Built:
    """A worker's build of one revision (or its refusal); `artifact` when it built."""

    sha: str
    worker: str  # the worker's address
    ok: bool = False
    reason: str = ""  # why the build failed (the revision's fault: it is skipped)
    refused: str = ""  # why the worker could not build at all (its machine's fault)
    error_lines: tuple[str, ...] = ()
    seconds: float = 0.0
    cached: bool = False  # from the worker's build cache
    compiled: bool = False
    log_path: str = ""  # on the worker
    history: HistoryVia | None = None  # how this task took the hunt's history (None: before)
    artifact: Artifact | None = None

    def summary(self) -> Built:
        """Itself without the artifact: what the client needs to know of a build."""
        return Built(
            sha=self.sha, worker=self.worker, ok=self.ok, reason=self.reason,
            refused=self.refused, error_lines=self.error_lines,
            seconds=self.seconds, cached=self.cached, compiled=self.compiled,
            log_path=self.log_path, history=self.history,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RunJob:
    """Runs of the repro at one revision, under the probe contract (runs/probe.py)."""

    sha: str
    hunt: str  # names the worker's log folder for this hunt
    repro_name: str
    repro_text: bytes
    timeout: float
    symptoms: frozenset[OutcomeKind]
    match: str | None
    parallel: int
    first_index: int  # numbers the run logs after the revision's earlier runs
    runs: int
    cache_size: int  # as BuildJob's


@dataclass(frozen=True, kw_only=True)
class Ran:
    worker: str
    outcomes: tuple[Outcome, ...]
    seconds: float
    refused: str = ""  # the artifact could not be stored on the worker (its disk)
    hang: Evidence | None = None  # a symptomatic hang these runs caught, with its stacks


@dataclass(frozen=True, kw_only=True)
class Request:
    """Runs wanted at one revision this round; `first_index` numbers their logs."""

    sha: str
    runs: int
    first_index: int


@dataclass(frozen=True, kw_only=True)
class Visit:
    """What the cluster did for one request: its build (no artifact) and its runs."""

    built: Built
    first: bool  # the hunt's first visit to the revision: its build is this visit's
    outcomes: tuple[Outcome, ...]  # each with the worker that ran it
    run_seconds: float  # the longest chunk: the runs' share of the round's wall time
