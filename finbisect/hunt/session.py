"""The hunt loop: ask the strategy, build, probe, record, until the answer is known.

This is the only module that knows about every other one. It resolves the
user's revisions, holds the cache entry's lock, asks the search for the next
revision, turns builds and runs into Steps, and returns a Result for the
report. Refusals (bad endpoints, unbuildable endpoints) are raised as
FinbisectErrors for cli to turn into exit codes.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

from finbisect.build.builder import Builder
from finbisect.build.cache import RECENT_USE_SECONDS, BuildCache
from finbisect.errors import (
    BuildError,
    EndpointError,
    FinbisectError,
    GitError,
    HuntInterruptedError,
    UsageError,
)
from finbisect.hunt.options import HuntOptions, hunt_key, reproduce_command
from finbisect.hunt.progress import Progress
from finbisect.hunt.state import HuntState, SavedVisit, iter_hunts_in
from finbisect.hunt.steps import build_reason, merge_visits, runs_verdict
from finbisect.models import Commit, HuntKind, Result, RunClass, Step, Verdict
from finbisect.repo.gitrepo import Hunt, UserRepo, Workspace, locked_workspace
from finbisect.runs.probe import Probe, ProbeConfig
from finbisect.runs.timing import TimingConfig, TimingProbe, compare_table, hunt_confidence
from finbisect.search.noisy import NoisyBisection
from finbisect.search.strategy import OLD_END, AnswerStatus, ClassicBisection, Search

__all__ = ["HuntOptions", "run_hunt"]


def run_hunt(options: HuntOptions, progress: Progress) -> Result:
    """Run one hunt to its answer. Raises FinbisectError for refusals."""
    started = time.monotonic()
    repro = options.repro.resolve()
    if not repro.is_file():
        raise UsageError(f"repro script not found: {options.repro}")
    user = UserRepo(options.repo)
    good, bad = user.resolve(options.good), user.resolve(options.bad)
    if good == bad:
        raise GitError(f"--good and --bad are the same commit ({good[:12]})")
    with locked_workspace(options.cache_dir, user) as workspace:
        progress.activity("fetch")
        workspace.refresh([good, bad])
        hunt = workspace.plan(good, bad, first_parent=options.first_parent)
        again = reproduce_command(options, good, bad)
        key = hunt_key(options, user.git_dir, good, bad)
        state = _resumable(workspace, key) or HuntState(
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
        logs = state.directory
        cache = BuildCache(options.cache_dir / "builds")
        builder = Builder(workspace, options.build, logs, cache)
        builder.check_tools()
        for end, sha in (("--good", good), ("--bad", bad)):
            if (reason := builder.unsupported(sha)) is not None:
                raise BuildError(f"{end} {sha[:12]} cannot be built: {reason}")
        probe = Probe(
            ProbeConfig(
                repro=repro,
                timeout=options.timeout,
                symptoms=options.symptoms,
                match=options.match,
                parallel=options.parallel_runs,
            ),
            logs,
        )
        search = _make_search(hunt, options)
        timing = (
            TimingProbe(
                TimingConfig(
                    repro=repro,
                    timeout=options.timeout,
                    threshold_percent=options.threshold_percent,
                    affinity=options.affinity,
                ),
                logs,
            )
            if options.slow
            else None
        )
        built = [i for i, sha in enumerate(hunt.graph.shas) if cache.has(builder.fingerprint, sha)]
        search.mark_built(built)
        loop = _HuntLoop(
            hunt=hunt,
            workspace=workspace,
            builder=builder,
            probe=probe,
            search=search,
            progress=progress,
            state=state,
            timing=timing,
        )
        if state.visits:
            progress.note(f"resuming interrupted hunt {state.id}: {len(state.visits)} visits done")
            loop.replay()
        try:
            loop.run()
        except KeyboardInterrupt:
            # proc has already killed the running children's process groups.
            _end(state, "interrupted", "interrupted")
            raise HuntInterruptedError(
                f"interrupted; nothing left running, builds and clone kept in {workspace.root}. "
                f"Run again: {again}"
            ) from None
        except FinbisectError as exc:
            _end(state, "failed", exc.message)
            raise
        # Keep the cache within bounds, never evicting what this hunt used nor what a
        # concurrent hunt may be running.
        cache.prune(options.cache_size, keep=loop.used_builds, spare_used_within=RECENT_USE_SECONDS)
        result = loop.result(again, wall_seconds=time.monotonic() - started)
        loop.finish(result)
        return result


def _resumable(workspace: Workspace, key: str) -> HuntState | None:
    """The newest unfinished hunt with this key, if any (the lock makes it not running)."""
    for state in iter_hunts_in(workspace.root / "hunts"):
        if state.key == key:
            return state if state.status in ("running", "interrupted") else None
    return None


def _end(state: HuntState, status: str, answer: str) -> None:
    state.status, state.answer = status, answer
    state.save()


def _make_search(hunt: Hunt, options: HuntOptions) -> Search:
    bug_is_new = hunt.kind is HuntKind.REGRESSION
    if options.slow:  # a timing verdict is settled per revision; calibration verifies the ends
        return ClassicBisection(hunt.graph, runs=1, bug_is_new=bug_is_new, verify=False)
    if options.runs is not None:
        return ClassicBisection(
            hunt.graph, runs=options.runs, bug_is_new=bug_is_new, verify=options.verify
        )
    return NoisyBisection(
        hunt.graph,
        bug_is_new=bug_is_new,
        confidence=options.confidence,
        max_runs=options.max_runs,
        max_runs_per_revision=options.max_runs_per_revision,
        verify=options.verify,
    )


class _HuntLoop:
    def __init__(
        self,
        *,
        hunt: Hunt,
        workspace: Workspace,
        builder: Builder,
        probe: Probe,
        search: Search,
        progress: Progress,
        state: HuntState,
        timing: TimingProbe | None = None,
    ) -> None:
        self.state = state
        self.timing = timing
        self.hunt = hunt
        self.workspace = workspace
        self.builder = builder
        self.probe = probe
        self.search = search
        self.progress = progress
        self.builds = 0
        self.used_builds: set[Path] = set()  # interpreters this hunt ran
        self.runs_at: dict[str, int] = {}  # sha -> runs made there (numbers the run logs)

    @property
    def visits(self) -> list[Step]:
        """One step per visit, in order; a revision may be visited again."""
        return [visit.step for visit in self.state.visits]

    def replay(self) -> None:
        """Feed a resumed hunt's saved visits to the search, as if they just happened."""
        for saved in self.state.visits:
            self._record(saved.index, saved.step, compiled=saved.compiled)
            self.builds += saved.compiled
            sha = saved.step.commit.sha
            self.runs_at[sha] = self.runs_at.get(sha, 0) + saved.step.runs

    def run(self) -> None:
        if self.timing is not None:
            self._calibrate(self.timing)
        while (request := self.search.next_request()) is not None:
            index = request.index
            sha = self.hunt.old if index == OLD_END else self.hunt.graph.shas[index]
            commit = self.workspace.commit(sha)
            self.progress.begin_step(
                number=len(self.visits) + 1,
                total=len(self.visits) + 1 + self.search.steps_left(),
                remaining=self.search.remaining(),
                commit=commit,
            )
            visit, compiled = self._visit(commit, request.runs)
            self.state.visits.append(SavedVisit(index=index, compiled=compiled, step=visit))
            self.state.save()
            # Show the revision's totals so far: one visit of a flaky bad revision
            # may well have shown no symptom.
            (so_far,) = [s for s in merge_visits(self.visits) if s.commit.sha == visit.commit.sha]
            self.progress.end_step(so_far)
            self._record(index, visit, compiled=compiled)

    def _calibrate(self, timing: TimingProbe) -> None:
        """Time both ends with pyperf; refuse (exit 4) unless they differ significantly."""
        interpreters = []
        for sha in (self.hunt.good, self.hunt.bad):
            self.progress.activity(f"build {self._end_name(sha)} {sha[:10]}")
            built = self.builder.build(sha)
            self.builds += built.compiled
            if not built.ok or built.interpreter is None:
                end = self._end_name(sha)
                raise BuildError(f"{end} {sha[:12]} does not build: {build_reason(built)}")
            self.used_builds.add(built.interpreter)
            interpreters.append(built.interpreter)
        self.progress.activity("timing both ends with pyperf")
        timing.calibrate(
            interpreters[0], interpreters[1], good_sha=self.hunt.good, bad_sha=self.hunt.bad
        )
        if self.state.visits:
            return  # resumed: the ends' steps were saved the first time
        for sha, measured, verdict in (
            (self.hunt.good, timing.good, Verdict.GOOD),
            (self.hunt.bad, timing.bad, Verdict.BAD),
        ):
            assert measured is not None  # calibrate() sets both or raises
            index = OLD_END if sha == self.hunt.old else self.hunt.graph.new_end
            step = Step(
                commit=self.workspace.commit(sha),
                verdict=verdict,
                reason=timing.calibration,
                timing=measured.to_json() | {"confidence": 1.0},
            )
            self.state.visits.append(SavedVisit(index=index, compiled=False, step=step))
            self.state.save()
            self.progress.end_step(step)

    def _record(self, index: int, visit: Step, *, compiled: bool) -> None:
        """Tell the search what a visit showed; refuse bad endpoints."""
        self.search.record_costs(
            index,
            build_seconds=visit.build_seconds if compiled else None,
            run_seconds=visit.run_seconds,
            runs=visit.runs,
        )
        is_endpoint = index in (OLD_END, self.hunt.graph.new_end)
        if is_endpoint:
            self._check_endpoint(visit)
        if visit.verdict is Verdict.SKIP:
            self.search.record_skip(index)
        elif visit.timing is not None:  # a timing verdict: like one decisive run
            bad = visit.verdict is Verdict.BAD
            self.search.record(index, symptoms=int(bad), clean=int(not bad))
        else:
            clean = sum(1 for o in visit.outcomes if o.run_class is RunClass.CLEAN)
            self.search.record(index, symptoms=visit.symptoms, clean=clean)
        if is_endpoint:
            self._check_verified(visit.commit)

    def _visit(self, commit: Commit, runs: int) -> tuple[Step, bool]:
        self.progress.activity("checkout and build")
        built = self.builder.build(commit.sha)
        self.builds += built.compiled
        if built.interpreter is not None:
            self.used_builds.add(built.interpreter)
        if not built.ok or built.interpreter is None:
            step = Step(
                commit=commit,
                verdict=Verdict.SKIP,
                reason=build_reason(built),
                build_seconds=built.seconds,
                cached=built.cached,
                build_log=str(built.log_path or ""),
            )
            return step, built.compiled
        run_start = time.monotonic()
        if self.timing is not None:
            self.progress.activity("timing with pyperf")
            judged = self.timing.judge(built.interpreter, commit.sha)
            step = Step(
                commit=commit,
                verdict=judged.verdict,
                reason=judged.reason + (f" (warning: {judged.warning})" if judged.warning else ""),
                build_seconds=built.seconds,
                run_seconds=time.monotonic() - run_start,
                cached=built.cached,
                build_log=str(built.log_path or ""),
                timing=(
                    judged.timing.to_json() | {"confidence": judged.confidence}
                    if judged.timing is not None
                    else None
                ),
            )
            return step, built.compiled
        first = self.runs_at.get(commit.sha, 0)
        self.runs_at[commit.sha] = first + runs
        outcomes = self.probe.run(
            built.interpreter,
            commit.sha,
            runs=runs,
            first_index=first,
            on_run=lambda i, n: self.progress.activity(f"run {i} of {n}"),
        )
        verdict, reason = runs_verdict(outcomes)
        step = Step(
            commit=commit,
            verdict=verdict,
            reason=reason,
            outcomes=outcomes,
            build_seconds=built.seconds,
            run_seconds=time.monotonic() - run_start,
            cached=built.cached,
            build_log=str(built.log_path or ""),
        )
        return step, built.compiled

    def _end_name(self, sha: str) -> str:
        return "--good" if sha == self.hunt.good else "--bad"

    def _check_endpoint(self, visit: Step) -> None:
        """Refuse endpoints that cannot be built or only fail in unrelated ways."""
        name = self._end_name(visit.commit.sha)
        if not visit.outcomes and visit.timing is None:
            raise BuildError(f"{name} {visit.commit.short} does not build: {visit.reason}")
        if visit.verdict is Verdict.SKIP:
            raise EndpointError(f"{name} {visit.commit.short} could not be judged: {visit.reason}")

    def _check_verified(self, commit: Commit) -> None:
        status = self.search.answer().status
        if status in (AnswerStatus.OLD_END_SHOWS_BUG_SIDE, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE):
            name = self._end_name(commit.sha)
            claim = "never shows" if name == "--good" else "shows"
            (all_visits,) = [s for s in merge_visits(self.visits) if s.commit.sha == commit.sha]
            raise EndpointError(
                f"{name} {commit.short} was expected to be the revision that {claim} "
                f"the symptom, but {all_visits.reason}"
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
        _end(self.state, "finished", answer)

    def result(self, command: str, *, wall_seconds: float) -> Result:
        answer = self.search.answer()
        shas = self.hunt.graph.shas
        culprit = (
            self.workspace.commit(shas[answer.culprit]) if answer.culprit is not None else None
        )
        candidates = tuple(self.workspace.commit(shas[i]) for i in answer.candidates)
        steps = merge_visits(self.visits)
        noisy = self.search if isinstance(self.search, NoisyBisection) else None
        extra: dict[str, object] = {}
        confidence = answer.confidence
        table = ""
        warnings: tuple[str, ...] = ()
        if self.timing is not None:
            confidence, extra, table = self._timing_summary(steps, culprit)
            warnings = tuple(self.timing.warnings)
        return Result(
            hunt=self.hunt.kind,
            good=self.workspace.commit(self.hunt.good),
            bad=self.workspace.commit(self.hunt.bad),
            culprit=culprit,
            candidates=() if culprit is not None else candidates,
            probabilities=() if culprit is not None else answer.probabilities,
            confidence=confidence,
            steps=steps,
            builds=self.builds,
            # Revisions whose interpreter came from the cache on their first visit
            # (revisits within a hunt are not builds saved).
            cached_builds=sum(1 for step in steps if step.cached),
            wall_seconds=wall_seconds,
            command=command,
            build=self.builder.config.description,
            candidate_shas=shas,
            posterior=tuple(noisy.posterior()) if noisy else (),
            p=noisy.p_estimate() if noisy else None,
            timing_table=table,
            warnings=warnings,
            extra=extra,
        )

    def _timing_summary(
        self, steps: tuple[Step, ...], culprit: Commit | None
    ) -> tuple[float, dict[str, object], str]:
        """Confidence, the slowdown at the culprit, and a compare_to-style table."""
        timing = self.timing
        assert timing is not None
        assert timing.good is not None
        assert timing.bad is not None
        table = compare_table([("--good -> --bad", timing.good, timing.bad)])
        if culprit is None:
            return 0.0, {}, table
        timed = {s.commit.sha: s.timing for s in steps if s.timing is not None}
        parent_sha = self.workspace.repo.commit(culprit.sha).parents[0].hexsha
        before = timed.get(parent_sha) or timed[self.hunt.old]
        after = timed[culprit.sha]
        ms = after["mean_ms"] - before["mean_ms"]
        slowdown = {"ms": round(ms, 3), "percent": round(ms / before["mean_ms"] * 100, 2)}
        used = [t.get("confidence", 1.0) for t in timed.values()]
        return hunt_confidence(used), {"slowdown": slowdown}, table
