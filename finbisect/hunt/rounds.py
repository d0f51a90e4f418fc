"""The hunt loop on a Dask cluster (`--dask-scheduler`): a round of revisions at a time.

Each round asks the search for up to one revision per worker (`Search.next_batch`:
k-way multisection), has the cluster build and run them all (cluster/executor.py),
then saves and records every visit in the order the search asked for them,
so that a round's results reach the search in a fixed order whatever order
the workers finished in. Everything else (the state, the endpoints' checks,
the progress, the answer) is the local loop's (session.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from finbisect.build.builder import Builder
from finbisect.build.cache import BuildCache, format_size
from finbisect.cluster.artifact import unpack
from finbisect.cluster.jobs import HistoryVia, Request, RunJob, Visit
from finbisect.errors import BuildError, ClusterError, UsageError
from finbisect.hunt.progress import Progress, eta_seconds
from finbisect.hunt.state import HuntState
from finbisect.hunt.steps import build_reason, runs_verdict
from finbisect.models import Commit, Step, Verdict
from finbisect.repo.gitrepo import Hunt, Workspace
from finbisect.search.strategy import OLD_END, Search

if TYPE_CHECKING:
    from finbisect.cluster.executor import DaskExecutor
    from finbisect.hunt.options import HuntOptions

__all__ = ["Cluster", "Loop", "open_cluster", "run_loop"]

Interpreters = Callable[[str], Path | None]  # sha -> its interpreter here, None if none
_HISTORY_VIA = {
    HistoryVia.HAD: "from its own repository",
    HistoryVia.PATH: "from finbisect's clone here (same machine: no bundle)",
    HistoryVia.BUNDLE: "from the bundle",
}


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """The hunt's Dask cluster, and where its artifacts land here when needed."""

    executor: DaskExecutor
    cache: BuildCache
    fingerprint: str  # of the hunt's build configuration

    def fetching(self, interpreter: Interpreters) -> Interpreters:
        """`interpreter`, with the revision's artifact brought from the cluster first (the
        evidence rerun runs here; this machine need not be able to build)."""

        def fetched(sha: str) -> Path | None:
            # The cluster gone, or no room here: build here, if this machine can.
            with contextlib.suppress(ClusterError, OSError):
                here = self.cache.lookup(self.fingerprint, sha) is not None
                artifact = None if here else self.executor.artifact(sha)
                if artifact is not None:
                    unpack(artifact, self.cache, self.cache.root.parent / "unpacking")
            return interpreter(sha)

        return fetched


def open_cluster(
    options: HuntOptions,
    *,
    workspace: Workspace,
    hunt: Hunt,
    builder: Builder,
    progress: Progress,
    closing: contextlib.ExitStack,
) -> Cluster | None:
    """Connect to --dask-scheduler and send the workers the history; closed by `closing`.

    Without a scheduler: None, once this machine's build tools are checked (with one,
    each worker checks its own).
    """
    if options.dask_scheduler is None:
        builder.check_tools()
        return None
    try:  # an optional extra: imported only when a hunt asks for a cluster
        from finbisect.cluster.executor import connect  # noqa: PLC0415
    except ImportError:
        raise UsageError("--dask-scheduler needs Dask: pip install 'finbisect[dask]'") from None
    progress.activity(f"connect to the Dask scheduler at {options.dask_scheduler}")
    executor = connect(options.dask_scheduler)
    closing.callback(executor.close)
    bundle = workspace.root / "cluster.bundle"
    try:
        refs = workspace.bundle(bundle, [hunt.good, hunt.bad])
        data = bundle.read_bytes()
    finally:
        bundle.unlink(missing_ok=True)
    executor.start(
        bundle=data, shas=(hunt.good, hunt.bad), refs=refs, clone=workspace.clone_dir,
        config=builder.config, here=builder.cache, cache_size=options.cache_size,
    )  # fmt: skip
    workers = executor.workers()
    progress.note(
        f"on the Dask cluster at {options.dask_scheduler}: {len(workers)} workers "
        f"({', '.join(workers)}); history bundle {format_size(len(data))}"
    )
    return Cluster(executor=executor, cache=builder.cache, fingerprint=builder.fingerprint)


class Loop(Protocol):
    """What the rounds use of the hunt loop (loop.HuntLoop)."""

    hunt: Hunt
    workspace: Workspace
    search: Search
    progress: Progress
    state: HuntState
    builds: int

    @property
    def visits(self) -> list[Step]: ...
    def _sha_at(self, index: int) -> str: ...
    def _save(self, index: int, step: Step, *, compiled: bool) -> None: ...
    def _record(self, index: int, visit: Step, *, compiled: bool) -> None: ...
    def _merged(self, sha: str) -> Step: ...
    def _say_new_notes(self) -> None: ...
    def _end_name(self, sha: str) -> str: ...
    def run(self) -> None: ...


def run_loop(loop: Loop, cluster: Cluster | None, options: HuntOptions) -> None:
    """The hunt's loop: here (loop.HuntLoop.run), or in rounds on the cluster."""
    if cluster is None:
        loop.run()
    else:
        run_rounds(loop, cluster.executor, _run_job(options, loop.state.id))


def _run_job(options: HuntOptions, hunt_id: str) -> RunJob:
    """The runs' part of every task: the repro, as the probe runs it locally."""
    return RunJob(
        sha="",
        hunt=hunt_id,
        repro_name=options.repro.name,
        repro_text=options.repro.read_bytes(),
        timeout=options.timeout,
        symptoms=options.symptom_kinds,
        match=options.match,
        parallel=options.parallel_runs,
        first_index=0,
        runs=0,
        cache_size=options.cache_size,
    )


def run_rounds(loop: Loop, executor: DaskExecutor, job: RunJob) -> None:
    """The search to its end, a round of builds and runs on the cluster at a time."""
    while batch := loop.search.next_batch(max(1, len(executor.workers()))):
        commits = [loop.workspace.commit(loop._sha_at(r.index)) for r in batch]
        steps_left = loop.search.steps_left()
        loop.progress.begin_step(
            number=len(loop.visits) + 1,
            total=len(loop.visits) + max(len(batch), steps_left),
            remaining=loop.search.remaining(),
            commit=commits[0],
            eta=eta_seconds(max(1, steps_left), loop.visits),
        )
        shorts = ", ".join(c.short for c in commits)
        loop.progress.activity(f"on the cluster: {len(batch)} in flight ({shorts})")
        requests = [
            Request(sha=c.sha, runs=r.runs, first_index=_runs_at(loop, c.sha))
            for r, c in zip(batch, commits, strict=True)
        ]
        start = time.monotonic()
        visits = executor.round(requests, hunt=job)
        wall = time.monotonic() - start
        for visit in visits:  # (a revisit's build is the first visit's: said then)
            if visit.first and visit.built.history is not None:
                how = _HISTORY_VIA[visit.built.history]
                loop.progress.note(f"worker {visit.built.worker} took the hunt's history {how}")
        for request, commit, visit in zip(batch, commits, visits, strict=True):
            step = _step(loop, request.index, commit, visit, wall)
            compiled = visit.first and visit.built.compiled
            loop._save(request.index, step, compiled=compiled)
            loop.builds += compiled
            loop.progress.end_step(loop._merged(commit.sha))
            loop._record(request.index, step, compiled=compiled)
            loop._say_new_notes()


def _runs_at(loop: Loop, sha: str) -> int:
    """Runs made at `sha` so far (saved visits included): the next run log's number."""
    return sum(v.runs for v in loop.visits if v.commit.sha == sha)


def _step(loop: Loop, index: int, commit: Commit, visit: Visit, wall: float) -> Step:
    built = visit.built
    if not built.ok:
        reason = build_reason(built)
        if index in (OLD_END, loop.hunt.graph.new_end):
            name = loop._end_name(commit.sha)
            raise BuildError(f"{name} {commit.short} does not build: {reason}")
        verdict = Verdict.SKIP
    else:
        verdict, reason = runs_verdict(visit.outcomes)
    return Step(
        commit=commit,
        verdict=verdict,
        reason=reason,
        outcomes=visit.outcomes,
        # A round's builds overlap: each revision's own build time, as the worker measured;
        # a revisit's interpreter is the first visit's, as from the cache here.
        build_seconds=built.seconds if visit.first else 0.0,
        run_seconds=min(visit.run_seconds, wall),
        cached=built.cached or not visit.first,
        build_log=f"{built.worker}:{built.log_path}" if built.log_path else "",
        built_by=built.worker,
    )
