"""What a Dask worker runs: finbisect's own Builder and Probe, in the worker's own cache.

Each worker process takes a slot of its machine's finbisect cache
(`$FINBISECT_WORKER_CACHE`, else `$FINBISECT_CACHE_DIR`, else the user
cache): `workers/slot-N/`, held with a lock while the process lives, with
the source repository made from the hunts' histories (fetched from the
client's clone when this machine can read it, else from the hunt's bundle),
its own clone and build trees, logs and scratch. Builds go to the machine's
shared build cache (`builds/`, safe for concurrent use), so a revision built
or fetched once on a machine is never built there again, whichever worker
asks; what a build or an artifact adds is pruned within the hunt's
--cache-size as a local hunt prunes. A worker builds one revision at a time;
runs may overlap.

Errors of the worker's machine (no compiler, a full disk) come back as data
(`Built.refused`), so the client says them in one line; a failure of the
revision is a failed build, as locally.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TypeVar

import platformdirs
from distributed import get_worker, worker_client

from finbisect.build.builder import Builder
from finbisect.build.cache import RECENT_USE_SECONDS, BuildCache, split_cache_size
from finbisect.build.config import BuildConfig
from finbisect.cluster.artifact import pack, unpack
from finbisect.cluster.jobs import BuildJob, Built, Bundle, History, HistoryVia, Ran, RunJob
from finbisect.cluster.worker_logs import prune_hunt_logs
from finbisect.errors import FinbisectError, MachineError
from finbisect.repo import git as gitcmd
from finbisect.repo.gitrepo import UserRepo, Workspace, locked_workspace
from finbisect.runs.probe import Probe, ProbeConfig

__all__ = ["WORKER_CACHE_ENV", "build", "hold", "run", "summary", "worker_cache_dir"]

T = TypeVar("T")
WORKER_CACHE_ENV = "FINBISECT_WORKER_CACHE"
_SLOTS = 256


def worker_cache_dir() -> Path:
    return Path(
        os.environ.get(WORKER_CACHE_ENV)
        or os.environ.get("FINBISECT_CACHE_DIR")
        or platformdirs.user_cache_dir("finbisect")
    )


def _address() -> str:
    try:
        return str(get_worker().address)
    except ValueError:  # called outside a worker (tests of this module)
        return "local"


@dataclass
class _Home:
    """This worker process's slot: its source repository, clone, builders and locks."""

    slot: Path
    cache: BuildCache
    workspace: Workspace
    lock_file: IO[str]
    stack: contextlib.ExitStack
    builders: dict[str, Builder]
    bundles: set[str]
    build_lock: threading.Lock
    store_lock: threading.Lock
    hunts: set[str]  # the hunts this process ran for (old ones' logs pruned at the first run)

    @property
    def source(self) -> Path:
        return self.slot / "source.git"


_HOME: _Home | None = None
_HOME_LOCK = threading.Lock()


def _home() -> _Home:
    """This process's slot, taken on first use and held while the process lives."""
    global _HOME  # noqa: PLW0603 -- one slot per worker process, by design
    with _HOME_LOCK:
        if _HOME is None:
            root = worker_cache_dir()
            for n in range(_SLOTS):
                slot = root / "workers" / f"slot-{n}"
                slot.mkdir(parents=True, exist_ok=True)
                lock_file = (slot / "lock").open("a+")
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock_file.close()
                    continue
                break
            else:
                raise MachineError(f"all {_SLOTS} worker slots of {root} are taken")
            source = slot / "source.git"
            if not (source / "HEAD").is_file():
                gitcmd.git("init", "--quiet", "--bare", str(source), cwd=slot)
            stack = contextlib.ExitStack()
            workspace = stack.enter_context(locked_workspace(slot / "cache", UserRepo(source)))
            _HOME = _Home(
                slot=slot, cache=BuildCache(root / "builds"), workspace=workspace,
                lock_file=lock_file, stack=stack, builders={}, bundles=set(),
                build_lock=threading.Lock(), store_lock=threading.Lock(), hunts=set(),
            )  # fmt: skip
        return _HOME


def _have_commits(repository: Path, shas: tuple[str, ...]) -> bool:
    check = "".join(f"{sha}^{{commit}}\n" for sha in shas)
    out = gitcmd.run_git("cat-file", "--batch-check=%(objecttype)", cwd=repository, input=check)
    return out.ok and out.stdout.split() == ["commit"] * len(shas)


def _take_history(home: _Home, history: History) -> HistoryVia | None:
    """The hunt's commits in the source repository, and the clone refreshed from it; how
    they came (None: taken by an earlier task of this process)."""
    if history.digest in home.bundles:
        return None
    via = HistoryVia.HAD
    if not _have_commits(home.source, history.shas):
        via = HistoryVia.PATH if _fetch_path(home, history) else _fetch_bundle(home, history)
        # The clone fetches HEAD too: the source's HEAD names a commit of the history.
        gitcmd.git("update-ref", "--no-deref", "HEAD", history.shas[-1], cwd=home.source)
    home.workspace.refresh(list(history.shas))
    home.bundles.add(history.digest)
    return via


def _fetch_path(home: _Home, history: History) -> bool:
    """Fetched from the client's clone, if this worker can read it there (the same machine,
    or a shared disk) and it has the commits: no bundle over the network."""
    clone = Path(history.path)
    try:
        if not history.path or not clone.is_dir() or not _have_commits(clone, history.shas):
            return False
    except (OSError, FinbisectError):  # unreadable, or not a repository
        return False
    refspecs = [f"+{ref}:{_refs(history)}/{n}" for n, ref in enumerate(history.refs)]
    fetched = gitcmd.run_git(
        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(clone), *refspecs,
        cwd=home.source, timeout=gitcmd.FETCH_TIMEOUT,
    )  # fmt: skip
    return fetched.ok and _have_commits(home.source, history.shas)


def _fetch_bundle(home: _Home, history: History) -> HistoryVia:
    """The bundle, fetched from the cluster (from a peer that has it) and unbundled."""
    with worker_client() as client:  # leaves the thread to other tasks while it waits
        bundle: Bundle = client.get_dataset(history.bundle_dataset).result()
    path = home.slot / f"{bundle.digest}.bundle"
    path.write_bytes(bundle.data)
    try:
        gitcmd.git(
            "fetch", "--quiet", "--no-write-fetch-head", str(path), f"+refs/*:{_refs(history)}/*",
            cwd=home.source, timeout=gitcmd.FETCH_TIMEOUT,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    return HistoryVia.BUNDLE


def _refs(history: History) -> str:
    return f"refs/bundles/{history.digest[:16]}"


def _builder(home: _Home, config: BuildConfig, cache_size: int) -> Builder:
    key = config.fingerprint() + repr(config.required_modules)
    if key not in home.builders:
        builder = Builder(home.workspace, config, home.slot / "logs", home.cache)
        builder.check_tools()
        home.builders[key] = builder
    home.builders[key].ccache_bytes = split_cache_size(cache_size).ccache  # this hunt's bound
    return home.builders[key]


def _prune(home: _Home, cache_size: int, keep: Path) -> None:
    """The machine's builds back within --cache-size's share, after one was added, as a
    local hunt prunes at its end: least recently used first, `keep` and the builds used in
    the last hour spared (this or another worker may be running them)."""
    limit = split_cache_size(cache_size).builds
    with contextlib.suppress(OSError):  # a full disk is said by the next store
        home.cache.prune(limit, keep=[keep], spare_used_within=RECENT_USE_SECONDS)


def build(job: BuildJob, history: History) -> Built:
    """Build `job.sha` with finbisect's Builder (from this machine's cache when it can)."""
    worker = _address()
    try:
        home = _home()
        with home.build_lock:
            via = _take_history(home, history)
            builder = _builder(home, job.config, job.cache_size)
            (home.slot / "logs").mkdir(exist_ok=True)
            built = builder.build(job.sha)
            stored = home.cache.lookup(builder.fingerprint, job.sha) if built.ok else None
            if stored is not None and not built.cached:
                _prune(home, job.cache_size, keep=stored.tree)
    except FinbisectError as exc:
        return Built(sha=job.sha, worker=worker, refused=exc.message)
    except OSError as exc:
        return Built(sha=job.sha, worker=worker, refused=str(exc))
    if built.ok and stored is None:
        return Built(sha=job.sha, worker=worker, refused="its build vanished from its cache")
    return Built(
        sha=job.sha,
        worker=worker,
        ok=built.ok,
        reason=built.reason,
        error_lines=built.error_lines,
        seconds=built.seconds,
        cached=built.cached,
        compiled=built.compiled,
        log_path=str(built.log_path or ""),
        history=via,
        artifact=pack(stored) if stored is not None else None,
    )


def hold(value: T) -> T:
    """`value` as a task's result: workers fetch it from each other (executor.start)."""
    return value


def summary(built: Built) -> Built:
    """The build without its artifact (a task beside the build: only this goes to the client)."""
    return built.summary()


def run(job: RunJob, built: Built) -> Ran:
    """`job.runs` runs of the repro at `job.sha`, the artifact stored in this machine's cache."""
    worker = _address()
    if built.artifact is None:
        return Ran(worker=worker, outcomes=(), seconds=0.0, refused="no artifact")
    start = time.monotonic()
    try:
        home = _home()
        with home.store_lock:
            had = home.cache.has(built.artifact.fingerprint, job.sha)
            stored = unpack(built.artifact, home.cache, home.slot / "scratch")
            if not had:
                _prune(home, job.cache_size, keep=stored.tree)
        repro = home.slot / "repros" / job.hunt / job.repro_name
        repro.parent.mkdir(parents=True, exist_ok=True)
        if not repro.is_file() or repro.read_bytes() != job.repro_text:
            repro.write_bytes(job.repro_text)
    except (OSError, FinbisectError) as exc:
        reason = exc.message if isinstance(exc, FinbisectError) else str(exc)
        return Ran(worker=worker, outcomes=(), seconds=0.0, refused=reason)
    logs = home.slot / "logs" / job.hunt
    logs.mkdir(parents=True, exist_ok=True)
    with home.store_lock:
        if job.hunt not in home.hunts:
            home.hunts.add(job.hunt)
            prune_hunt_logs(home.slot, split_cache_size(job.cache_size).logs, job.hunt)
    probe = Probe(
        ProbeConfig(
            repro=repro,
            timeout=job.timeout,
            symptoms=job.symptoms,
            match=None if job.match is None else re.compile(job.match),
            parallel=job.parallel,
            scratch=home.slot / "scratch",
        ),
        logs,
    )
    outcomes = probe.run(
        stored.tree / stored.interpreter, job.sha, runs=job.runs, first_index=job.first_index
    )
    outcomes = tuple(replace(o, worker=worker) for o in outcomes)
    hang = probe.hang_seen(job.sha)
    return Ran(
        worker=worker, outcomes=outcomes, seconds=time.monotonic() - start,
        hang=None if hang is None else replace(hang, log=f"{worker}:{hang.log}"),
    )  # fmt: skip
