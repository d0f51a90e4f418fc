"""The client's side of a hunt on a Dask cluster: builds and runs as tasks, a round at a time.

`connect` opens a `distributed.Client` on the scheduler's address; the
client reads Dask's own configuration (TLS, timeouts) as any Dask program
does. `start` offers the hunt's history to the workers: a worker on this
machine fetches it from finbisect's clone here, the others fetch a `git
bundle` of it (from a peer that has it, once per worker). `round` takes the
revisions the search asked for: each is built once across the cluster (the
client keeps the build's future for the rest of the hunt: its artifact stays
on the worker that built it and moves to the workers that run it), and its
runs are split into chunks spread over the workers. A worker that dies loses
nothing: Dask reruns its tasks elsewhere, rebuilding from the lineage; a
result reaches the hunt once, when the round is gathered. A scheduler that
goes away is a ClusterError (resumable).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import dask.config
from dask.utils import parse_timedelta
from distributed import CancelledError, Client, Future, KilledWorker

from finbisect.build.cache import BuildCache, CachedBuild
from finbisect.build.config import BuildConfig
from finbisect.cluster import tasks
from finbisect.cluster.artifact import Artifact, pack
from finbisect.cluster.jobs import BuildJob, Built, Bundle, History, Request, RunJob, Visit
from finbisect.errors import ClusterError
from finbisect.runs.evidence import Evidence

__all__ = ["DaskExecutor", "connect"]

T = TypeVar("T")
_CLOSE_SECONDS = 5.0  # to say goodbye to the scheduler (or give up on a lost one)
_POLL_SECONDS = 0.05  # how often a wait for a task checks that the scheduler is still there


def connect(address: str) -> DaskExecutor:
    """A client on the scheduler at `address`, once it has a worker."""
    try:
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_say(exc)}") from None
    try:
        client.wait_for_workers(1, timeout=_connect_timeout())
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(f"the Dask cluster at {address} has no worker: {_say(exc)}") from None
    return DaskExecutor(client, address)


def _connect_timeout() -> float:
    seconds = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    return float(seconds) if seconds is not None else 30.0


def _say(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class DaskExecutor:
    def __init__(self, client: Client, address: str) -> None:
        self.client = client
        self.address = address
        self._builds: dict[str, Future[Built]] = {}  # sha -> its build, for the whole hunt
        self._bundle: Future[Bundle] | None = None
        self._history: History | None = None
        self._published = ""  # the bundle's name on the scheduler (History.bundle_dataset)
        self._config: BuildConfig | None = None
        self._here: BuildCache | None = None  # this machine's build cache
        self._cache_size = 0
        self._hangs: dict[str, Evidence] = {}  # sha -> the first hang caught there, stacks too
        self._turn = itertools.count()  # rotates which worker takes a revision's first chunk

    def workers(self) -> list[str]:
        """The workers' addresses now, sorted (chunks go to them in this order); with none,
        waits for one as long as Dask waits to connect."""
        try:
            if not (workers := self.client.nthreads()):
                self.client.wait_for_workers(1, timeout=_connect_timeout())
                workers = self.client.nthreads()
        except (OSError, TimeoutError) as exc:
            raise self._lost(exc) from None
        if not workers:
            raise self._lost(RuntimeError("no worker left"))
        return sorted(workers)

    def start(
        self, *, bundle: bytes, shas: Sequence[str], refs: Sequence[str], clone: Path,
        config: BuildConfig, here: BuildCache, cache_size: int,
    ) -> None:  # fmt: skip
        """Hand the hunt's history to the cluster: the bundle of `refs` (naming `shas` in
        `clone`), which a worker fetches (from a peer) only when it cannot read `clone`.

        A task, not scattered data: Dask keeps one replica of scattered data (its memory
        manager drops the others), and a worker dying with it would lose it for good; the
        scheduler keeps a task's input, so a lost bundle is handed out again. Waited for
        here: a build that needs it waits for it in its worker's thread (tasks.build).
        """
        digest = hashlib.sha256(bundle).hexdigest()
        history = History(
            digest=digest, shas=tuple(shas), path=str(clone), refs=tuple(refs),
            bundle_dataset=f"finbisect-bundle-{digest[:16]}-{self.client.id}",
        )  # fmt: skip
        payload = Bundle(digest=digest, data=bundle, shas=history.shas)
        self._bundle = self._hold(payload, key=f"finbisect-{digest}")
        self._wait(self._bundle)
        try:
            self.client.publish_dataset(self._bundle, name=history.bundle_dataset)
        except (OSError, TimeoutError) as exc:
            raise self._lost(exc) from None
        self._published = history.bundle_dataset
        self._history, self._config, self._here = history, config, here
        self._cache_size = cache_size

    def _hold(self, value: T, *, key: str) -> Future[T]:
        """`value` as a task's result (a large one: the bundle, an artifact; see start)."""
        with warnings.catch_warnings():  # "large object in task graph": meant, see start
            warnings.simplefilter("ignore", UserWarning)
            return self.client.submit(tasks.hold, value, key=key)

    def round(self, requests: Sequence[Request], *, hunt: RunJob) -> list[Visit]:
        """Build and run every request on the cluster; their visits, in the requests' order.

        `hunt` is the run job's template (repro, timeout, symptoms); its sha and counts
        are each chunk's.
        """
        workers = self.workers()
        plans = []
        for request in requests:
            first = request.sha not in self._builds
            build = self._build(request.sha)
            summary = self.client.submit(tasks.summary, build, pure=False)
            chunks = _chunks(request.runs, len(workers))
            turn = next(self._turn)
            runs = [
                self.client.submit(
                    tasks.run,
                    _job(hunt, request, offset, count),
                    build,
                    workers=[workers[(turn + i) % len(workers)]],
                    allow_other_workers=True,
                    pure=False,
                )
                for i, (offset, count) in enumerate(chunks)
            ]
            plans.append((first, summary, runs))
        visits = []
        for first, summary, runs in plans:
            built = self._result(summary)
            if built.refused:
                raise _refusal(built)
            ran = [self._result(future) for future in runs]
            if built.ok and (refused := [r for r in ran if r.refused]):
                raise ClusterError(f"worker {refused[0].worker} cannot run: {refused[0].refused}")
            outcomes = tuple(o for r in ran for o in r.outcomes)
            seconds = max((r.seconds for r in ran), default=0.0)
            if (hang := next((r.hang for r in ran if r.hang is not None), None)) is not None:
                self._hangs.setdefault(built.sha, hang)
            visits.append(Visit(built=built, first=first, outcomes=outcomes, run_seconds=seconds))
        return visits

    def _build(self, sha: str) -> Future[Built]:
        """The revision's build: submitted once per hunt, whichever round asks again; from
        this machine's cache when it has the revision (built here before, say)."""
        if sha not in self._builds:
            if self._history is None or self._config is None or self._here is None:
                raise RuntimeError("DaskExecutor.start() first")
            # Named by what it builds: a second client asking for the same build shares it.
            key = f"finbisect-build-{self._config.fingerprint()}-{sha}"
            cached = self._here.lookup(self._config.fingerprint(), sha)
            if cached is not None:
                self._builds[sha] = self._hold(_built_here(cached), key=f"{key}-here")
            else:
                job = BuildJob(sha=sha, config=self._config, cache_size=self._cache_size)
                self._builds[sha] = self.client.submit(tasks.build, job, self._history, key=key)
        return self._builds[sha]

    def hang_seen(self, sha: str) -> Evidence | None:
        """A symptomatic hang a worker caught at `sha`, with its stacks (as Probe.hang_seen)."""
        return self._hangs.get(sha)

    def artifact(self, sha: str) -> Artifact | None:
        """A revision's built tree, brought to the client (for the evidence rerun)."""
        future = self._builds.get(sha)
        return None if future is None else self._result(future).artifact

    def _wait(self, future: Future[Any]) -> None:
        """Until the task ends, however long (a build may take an hour), but only while the
        client is connected: a future submitted as the connection dropped never ends."""
        while not future.done():
            time.sleep(_POLL_SECONDS)
            if self.client.status != "running":
                raise self._lost(RuntimeError(f"the client is {self.client.status}"))

    def _result(self, future: Future[Any]) -> Any:
        """The task's result, or a ClusterError saying why there is none."""
        self._wait(future)
        try:
            return future.result()
        except KilledWorker as exc:
            raise ClusterError(
                f"a task killed every worker that took it ({_say(exc)}); the hunt is saved"
            ) from None
        except (CancelledError, OSError, TimeoutError) as exc:
            raise self._lost(exc) from None
        except Exception as exc:  # a worker's bug: still one line, and the hunt saved
            raise ClusterError(f"a task failed on the cluster: {_say(exc)}") from None

    def _lost(self, exc: BaseException) -> ClusterError:
        # Said here in one line: not also in Dask's log, with its reconnection's traceback
        # (Dask configures "distributed" and some loggers below it, each with a handler).
        for name in list(logging.root.manager.loggerDict):
            if name == "distributed" or name.startswith("distributed."):
                logging.getLogger(name).disabled = True
        return ClusterError(
            f"lost the Dask scheduler at {self.address} ({_say(exc)}); the hunt is saved: "
            "run the same command again to resume (on the cluster or, without "
            "--dask-scheduler, here)"
        )

    def close(self) -> None:
        """Release the hunt's tasks and results on the cluster, and disconnect."""
        with contextlib.suppress(OSError, TimeoutError):  # the scheduler is gone already
            if self._published and self.client.status == "running":
                self.client.unpublish_dataset(self._published)
            self.client.close(timeout=_CLOSE_SECONDS)


def _built_here(cached: CachedBuild) -> Built:
    """A build from this machine's cache, as a worker's build would come back (no worker)."""
    return Built(
        sha=cached.sha, worker="", ok=cached.ok, reason=cached.reason,
        error_lines=cached.error_lines, cached=True,
        artifact=pack(cached) if cached.ok else None,
    )  # fmt: skip


def _chunks(runs: int, workers: int) -> list[tuple[int, int]]:
    """(offset, count) of each chunk: `runs` split as evenly as possible over the workers."""
    parts = max(1, min(runs, workers))
    size, extra = divmod(runs, parts)
    chunks, offset = [], 0
    for i in range(parts):
        count = size + (i < extra)
        chunks.append((offset, count))
        offset += count
    return chunks


def _job(template: RunJob, request: Request, offset: int, count: int) -> RunJob:
    return replace(template, sha=request.sha, first_index=request.first_index + offset, runs=count)


def _refusal(built: Built) -> ClusterError:
    """A worker that cannot build at all (its toolchain, its disk): not the revision's fault,
    so the hunt is saved to resume once the worker is mended."""
    return ClusterError(f"worker {built.worker} cannot build {built.sha[:12]}: {built.refused}")
