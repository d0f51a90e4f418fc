"""The hunt loop: ask the search, build, judge, record, until the answer is known.

This is the only module that knows about every other one. It resolves the
user's revisions, holds the cache entry's lock, asks the search for the next
revision, has the judge (judge.py) turn builds into Steps, saves the state
after every visit and returns a Result for the reports. Refusals (bad or
unbuildable endpoints) are raised as FinbisectErrors for cli to turn into
exit codes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

from finbisect.build.builder import Builder, BuildResult
from finbisect.build.cache import (
    RECENT_USE_SECONDS,
    BuildCache,
    split_cache_size,
)
from finbisect.errors import (
    BuildError,
    EndpointError,
    FinbisectError,
    GitError,
    HuntInterruptedError,
    MachineError,
    UsageError,
)
from finbisect.hunt.answer_evidence import EvidenceSource, with_evidence
from finbisect.hunt.claim import claim, scratch_dir
from finbisect.hunt.judge import Judge, Judged, RunJudge, make_judge
from finbisect.hunt.log_retention import prune_logs
from finbisect.hunt.options import HuntOptions, hunt_key, reproduce_command
from finbisect.hunt.progress import Progress, eta_seconds
from finbisect.hunt.rounds import open_cluster, run_loop
from finbisect.hunt.state import HuntState, SavedVisit, unfinished_hunt
from finbisect.hunt.steps import build_reason, merge_visits
from finbisect.models import Commit, Result, Step, Verdict
from finbisect.repo.gitrepo import Hunt, UserRepo, Workspace, locked_workspace
from finbisect.search.strategy import OLD_END, AnswerStatus, Search

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
        loop = _HuntLoop(
            hunt=hunt, workspace=workspace, builder=builder, judge=judge, progress=progress,
            state=state,
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
                seen=judge.probe.hang_seen,
            )  # fmt: skip
            if result.evidence_note:
                progress.note(result.evidence_note)
            result = dataclasses.replace(result, wall_seconds=time.monotonic() - started)
        loop.finish(result)
        return result


class _HuntLoop:
    def __init__(
        self,
        *,
        hunt: Hunt,
        workspace: Workspace,
        builder: Builder,
        judge: Judge,
        progress: Progress,
        state: HuntState,
    ) -> None:
        self.hunt = hunt
        self.workspace = workspace
        self.builder = builder
        self.judge = judge
        self.search: Search = judge.make_search(hunt)
        self.progress = progress
        self.state = state
        self.builds = 0
        self.used_builds: set[Path] = set()  # interpreters this hunt ran
        self._notes_said = 0

    @property
    def visits(self) -> list[Step]:
        """One step per visit, in order; a revision may be visited again."""
        return [visit.step for visit in self.state.visits]

    def replay(self) -> None:
        """Feed a resumed hunt's saved visits to the search, as if they just happened."""
        for saved in self.state.visits:
            self.judge.seen(saved.step)
            self._record(saved.index, saved.step, compiled=saved.compiled)
            self.builds += saved.compiled

    def run(self) -> None:
        prepared = self.judge.prepare(self.hunt, self._build_end, self.workspace.commit)
        if not self.state.visits:  # a resumed hunt saved these the first time
            for step in prepared:
                self._save(self._index_of(step.commit.sha), step, compiled=False)
                self.progress.end_step(step)
        while (request := self.search.next_request()) is not None:
            index = request.index
            commit = self.workspace.commit(self._sha_at(index))
            steps_left = self.search.steps_left()
            self.progress.begin_step(
                number=len(self.visits) + 1,
                # The search's own expectation: its uncertainty over what a visit tells.
                total=len(self.visits) + max(1, steps_left),
                remaining=self.search.remaining(),
                commit=commit,
                eta=eta_seconds(max(1, steps_left), self.visits),
            )
            visit, compiled = self._visit(index, commit, request.runs)
            self._save(index, visit, compiled=compiled)
            # Show the revision's totals so far: one visit of a flaky bad revision
            # may well have shown no symptom.
            self.progress.end_step(self._merged(commit.sha))
            self._record(index, visit, compiled=compiled)
            self._say_new_notes()

    def _say_new_notes(self) -> None:
        notes = self.search.notes()
        for note in notes[self._notes_said :]:
            self.progress.note(note)
        self._notes_said = len(notes)

    def _sha_at(self, index: int) -> str:
        return self.hunt.old if index == OLD_END else self.hunt.graph.shas[index]

    def _index_of(self, sha: str) -> int:
        return OLD_END if sha == self.hunt.old else self.hunt.graph.shas.index(sha)

    def _save(self, index: int, step: Step, *, compiled: bool) -> None:
        self.state.visits.append(SavedVisit(index=index, compiled=compiled, step=step))
        self.state.save()

    def _merged(self, sha: str) -> Step:
        (step,) = [s for s in merge_visits(self.visits) if s.commit.sha == sha]
        return step

    def _build(self, sha: str) -> BuildResult:
        built = self.builder.build(sha)
        self.builds += built.compiled
        if built.interpreter is not None:
            self.used_builds.add(built.interpreter)
        return built

    def interpreter(self, sha: str) -> Path | None:
        """A revision's interpreter (from the cache when it was visited), None if it fails."""
        built = self._build(sha)
        return built.interpreter if built.ok else None

    def _build_end(self, sha: str) -> Path:
        """An endpoint's interpreter for the judge's preparation; BuildError if it has none."""
        self.progress.activity(f"build {self._end_name(sha)} {sha[:10]}")
        built = self._build(sha)
        if not built.ok or built.interpreter is None:
            raise BuildError(
                f"{self._end_name(sha)} {sha[:12]} does not build: {build_reason(built)}"
            )
        return built.interpreter

    def _visit(self, index: int, commit: Commit, runs: int) -> tuple[Step, bool]:
        self.progress.activity("checkout and build")
        built = self._build(commit.sha)
        if not built.ok or built.interpreter is None:
            if index in (OLD_END, self.hunt.graph.new_end):
                name = self._end_name(commit.sha)
                raise BuildError(f"{name} {commit.short} does not build: {build_reason(built)}")
            judged = Judged(verdict=Verdict.SKIP, reason=build_reason(built))
            run_seconds = 0.0
        else:
            run_start = time.monotonic()
            judged = self.judge.visit(commit, built.interpreter, runs, self.progress.activity)
            run_seconds = time.monotonic() - run_start
        step = Step(
            commit=commit,
            verdict=judged.verdict,
            reason=judged.reason,
            outcomes=judged.outcomes,
            build_seconds=built.seconds,
            run_seconds=run_seconds,
            cached=built.cached,
            build_log=str(built.log_path or ""),
            timing=judged.timing,
        )
        return step, built.compiled

    def _record(self, index: int, visit: Step, *, compiled: bool) -> None:
        """Tell the search what a visit showed; refuse bad endpoints."""
        self.search.record_costs(
            index,
            build_seconds=visit.build_seconds if compiled else None,
            run_seconds=visit.run_seconds,
            runs=visit.runs,
        )
        is_endpoint = index in (OLD_END, self.hunt.graph.new_end)
        if visit.verdict is Verdict.SKIP:
            if is_endpoint:
                name = self._end_name(visit.commit.sha)
                raise EndpointError(
                    f"{name} {visit.commit.short} could not be judged: {visit.reason}"
                )
            self.search.record_skip(index)
            return
        symptoms, clean = self.judge.counts(visit)
        self.search.record(index, symptoms=symptoms, clean=clean)
        if is_endpoint:
            self._check_verified(visit.commit)

    def _end_name(self, sha: str) -> str:
        return "--good" if sha == self.hunt.good else "--bad"

    def _check_verified(self, commit: Commit) -> None:
        status = self.search.answer().status
        if status in (AnswerStatus.OLD_END_SHOWS_BUG_SIDE, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE):
            name = self._end_name(commit.sha)
            claim = "never shows" if name == "--good" else "shows"
            raise EndpointError(
                f"{name} {commit.short} was expected to be the revision that {claim} "
                f"the symptom, but {self._merged(commit.sha).reason}"
            )

    def finish(self, result: Result) -> None:
        """Save the answer, and each visit's verdict as the answer implies it (for the log)."""
        culprit = self.search.answer().culprit
        for i, saved in enumerate(self.state.visits):
            if saved.step.verdict is Verdict.SKIP:
                implied = "skip"
            elif culprit is None:
                implied = ""
            elif saved.index == OLD_END:
                implied = "old"
            else:
                implied = "new" if self.hunt.graph.is_new(saved.index, culprit) else "old"
            self.state.visits[i] = dataclasses.replace(saved, implied=implied)
        self.state.culprit = result.culprit.sha if result.culprit is not None else None
        if result.culprit is not None:
            answer = f"{self.hunt.kind.phrase} {result.culprit.sha}"
        else:
            answer = f"inconclusive: {len(result.candidates)} candidates"
        self.state.end("finished", answer)

    def _sides_of(self, steps: tuple[Step, ...], culprit: int) -> tuple[Step, ...]:
        """Two-sided hunts: a revision's verdict is its side of the culprit (a symptom may
        show on both sides, so one crash does not make a revision bad)."""
        graph, new_side = self.hunt.graph, self.hunt.kind.new_verdict
        old_side = Verdict.GOOD if new_side is Verdict.BAD else Verdict.BAD
        sided = []
        for step in steps:
            if step.verdict is Verdict.SKIP:
                sided.append(step)
                continue
            index = self._index_of(step.commit.sha)
            new = index != OLD_END and graph.is_new(index, culprit)
            sided.append(dataclasses.replace(step, verdict=new_side if new else old_side))
        return tuple(sided)

    def result(self, command: str, *, wall_seconds: float) -> Result:
        answer = self.search.answer()
        shas = self.hunt.graph.shas
        culprit = (
            self.workspace.commit(shas[answer.culprit]) if answer.culprit is not None else None
        )
        steps = merge_visits(self.visits)
        summary = self.search.summary()
        if summary.p_before is not None and answer.culprit is not None:
            steps = self._sides_of(steps, answer.culprit)
        baseline: tuple[str, ...] = (self.hunt.old,)
        if culprit is not None:
            baseline = (*self.workspace.parents(culprit.sha)[:1], self.hunt.old)
        conclusion = self.judge.conclude(steps, culprit, baseline)
        return Result(
            hunt=self.hunt.kind,
            good=self.workspace.commit(self.hunt.good),
            bad=self.workspace.commit(self.hunt.bad),
            culprit=culprit,
            candidates=()
            if culprit is not None
            else tuple(self.workspace.commit(shas[i]) for i in answer.candidates),
            probabilities=() if culprit is not None else answer.probabilities,
            confidence=answer.confidence
            if conclusion.confidence is None
            else conclusion.confidence,
            steps=steps,
            builds=self.builds,
            # Revisions whose interpreter came from the cache on their first visit
            # (revisits within a hunt are not builds saved).
            cached_builds=sum(1 for step in steps if step.cached),
            wall_seconds=wall_seconds,
            command=command,
            build=self.builder.config.description,
            candidate_shas=shas,
            posterior=summary.posterior,
            p=summary.p,
            p_before=summary.p_before,
            p_after=summary.p_after,
            notes=self.search.notes(),
            status=answer.status.value,
            slowdown=conclusion.slowdown,
            timing_table=conclusion.table,
            warnings=conclusion.warnings,
            cpython_links=self.workspace.is_cpython(),
        )
