"""One hunt, from the user's options to its Result.

This is the only module that knows about every other one. It resolves the
user's revisions, holds the cache entry's lock, resumes a saved hunt, sets up
the builder, the judge and the loop (loop.py; or rounds on a cluster,
rounds.py), keeps the cache within bounds, adds the evidence at the answer
and returns a Result for the reports. Refusals (bad or
unbuildable endpoints) are raised as FinbisectErrors for cli to turn into
exit codes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

from finbisect.build.builder import Builder
from finbisect.build.cache import (
    RECENT_USE_SECONDS,
    BuildCache,
    split_cache_size,
)
from finbisect.errors import (
    BuildError,
    FinbisectError,
    GitError,
    HuntInterruptedError,
    MachineError,
    UsageError,
)
from finbisect.hunt.answer_evidence import EvidenceSource, with_evidence
from finbisect.hunt.build_ahead import BuildAhead
from finbisect.hunt.claim import claim, scratch_dir
from finbisect.hunt.judge import RunJudge, make_judge
from finbisect.hunt.log_retention import prune_logs
from finbisect.hunt.loop import HuntLoop
from finbisect.hunt.options import HuntOptions, hunt_key, reproduce_command
from finbisect.hunt.progress import Progress
from finbisect.hunt.rounds import open_cluster, run_loop
from finbisect.hunt.state import HuntState, unfinished_hunt
from finbisect.models import Result
from finbisect.repo.gitrepo import UserRepo, locked_workspace

__all__ = ["check_cache_dir", "run_hunt"]


def check_cache_dir(cache_dir: Path, user: UserRepo) -> None:
    """Refuse a cache inside the user's checkout: finbisect never writes there."""
    where = cache_dir.resolve()
    for theirs in (user.path, user.git_dir):
        if where == theirs or theirs in where.parents:
            raise UsageError(
                f"--cache-dir {cache_dir} is inside the repository {theirs}; "
                "finbisect never writes into your checkout: choose a directory outside it"
            )


def run_hunt(options: HuntOptions, progress: Progress) -> Result:
    """Run one hunt to its answer. Raises FinbisectError for refusals."""
    started = time.monotonic()
    if not options.repro.is_file():
        raise UsageError(f"repro script not found: {options.repro}")
    user = UserRepo(options.repo)
    check_cache_dir(options.cache_dir, user)
    good, bad = user.resolve(options.good), user.resolve(options.bad)
    if good == bad:
        raise GitError(f"--good and --bad are the same commit ({good[:12]})")
    with (
        locked_workspace(options.cache_dir, user) as workspace,
        claim(workspace, progress.note),
        contextlib.ExitStack() as closing,
    ):
        progress.activity("fetch")
        workspace.refresh([good, bad])
        hunt = workspace.plan(good, bad, first_parent=options.first_parent)
        again = reproduce_command(options, good, bad)
        key = hunt_key(options, user.git_dir, good, bad)
        state = unfinished_hunt(workspace.root / "hunts", key, note=progress.note) or HuntState(
            directory=workspace.root / "hunts" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"),
            key=key,
            kind=hunt.kind.value,
            repo=str(user.path),
            good=good,
            bad=bad,
            command=again,
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            visits=[],
        )
        cache = BuildCache(options.cache_dir / "builds")
        shares = split_cache_size(options.cache_size)
        builder = Builder(
            workspace, options.build_config(), state.directory, cache, ccache_bytes=shares.ccache
        )
        cluster = open_cluster(
            options, workspace=workspace, hunt=hunt, builder=builder, progress=progress,
            closing=closing,
        )  # fmt: skip
        for end, sha in (("--good", good), ("--bad", bad)):
            if (reason := builder.unsupported(sha)) is not None:
                raise BuildError(f"{end} {sha[:12]} cannot be built: {reason}")
        judge = make_judge(options, state.directory, scratch_dir(workspace))
        loop = HuntLoop(
            hunt=hunt, workspace=workspace, builder=builder, judge=judge, progress=progress,
            state=state,
            # Timing hunts measure speed: nothing else may load the machine meanwhile; on a
            # cluster, the workers build.
            ahead=BuildAhead(
                builder,
                enabled=options.build_ahead and isinstance(judge, RunJudge) and cluster is None,
            ),
        )  # fmt: skip
        loop.search.mark_built(
            i for i, sha in enumerate(hunt.graph.shas) if cache.has(builder.fingerprint, sha)
        )
        if state.visits:
            progress.note(f"resuming interrupted hunt {state.id}: {len(state.visits)} visits done")
            loop.replay()
        try:
            run_loop(loop, cluster, options)  # here, or on --dask-scheduler's cluster
        except KeyboardInterrupt:
            # proc has already killed the running children's process groups.
            state.end_quietly("interrupted", "interrupted")
            raise HuntInterruptedError(
                f"interrupted; nothing left running, builds and clone kept in {workspace.root}. "
                f"Run again: {again}"
            ) from None
        except MachineError as exc:  # not the revisions' fault: resumable once mended
            state.end_quietly("interrupted", exc.message)
            raise
        except FinbisectError as exc:
            state.end_quietly("failed", exc.message)
            raise
        # Keep the cache within bounds, never evicting what this hunt used nor what a
        # concurrent hunt may be running.
        cache.prune(shares.builds, keep=loop.used_builds, spare_used_within=RECENT_USE_SECONDS)
        prune_logs(options.cache_dir, shares.logs, keep=state.directory)
        result = loop.result(again, wall_seconds=time.monotonic() - started)
        if isinstance(judge, RunJudge) and options.evidence and result.culprit is not None:
            progress.activity("evidence: the symptom under gdb")
            result = with_evidence(
                result,
                EvidenceSource(
                    repro=options.repro, timeout=options.timeout,
                    symptoms=options.symptom_kinds, logs=state.directory,
                ),
                parents=workspace.parents(result.culprit.sha),
                build=loop.interpreter if cluster is None else cluster.fetching(loop.interpreter),
                diff=workspace.diff(result.culprit.sha),
                seen=judge.probe.hang_seen if cluster is None else cluster.executor.hang_seen,
            )  # fmt: skip
            if result.evidence_note:
                progress.note(result.evidence_note)
            result = dataclasses.replace(result, wall_seconds=time.monotonic() - started)
        loop.finish(result)
        return result
