"""The hunt loop: ask the strategy, build, probe, record, until the answer is known.

This is the only module that knows about every other one. It resolves the
user's revisions, holds the cache entry's lock, asks the search for the next
revision, turns builds and runs into Steps, and returns a Result for the
report. Refusals (bad endpoints, unbuildable endpoints) are raised as
FinbisectErrors for cli to turn into exit codes.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from finbisect.build import BuildConfig, Builder, BuildResult
from finbisect.buildcache import BuildCache
from finbisect.errors import BuildError, EndpointError, GitError, HuntInterruptedError, UsageError
from finbisect.gitrepo import Hunt, UserRepo, Workspace, locked_workspace
from finbisect.models import Commit, HuntKind, Outcome, OutcomeKind, Result, RunClass, Step, Verdict
from finbisect.probe import Probe, ProbeConfig
from finbisect.report import Progress
from finbisect.strategy import OLD_END, AnswerStatus, ClassicBisection, Search

__all__ = ["HuntOptions", "reproduce_command", "run_hunt"]


@dataclass(frozen=True, kw_only=True)
class HuntOptions:
    repro: Path
    repo: Path
    good: str
    bad: str
    build: BuildConfig
    symptoms: frozenset[OutcomeKind]
    match: re.Pattern[str] | None
    timeout: float
    runs: int
    first_parent: bool = False
    verify: bool = True
    cache_dir: Path
    cache_size: int = 20 * 1024**3  # bytes of cached builds kept


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
        logs = workspace.root / "hunts" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
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
                runs=options.runs,
            ),
            logs,
        )
        search = ClassicBisection(
            hunt.graph,
            runs=options.runs,
            bug_is_new=hunt.kind is HuntKind.REGRESSION,
            verify=options.verify,
        )
        again = reproduce_command(options, good, bad)
        loop = _HuntLoop(
            hunt=hunt,
            workspace=workspace,
            builder=builder,
            probe=probe,
            search=search,
            progress=progress,
        )
        try:
            steps = loop.run()
        except KeyboardInterrupt:
            # proc has already killed the running child's process group.
            raise HuntInterruptedError(
                f"interrupted; nothing left running, builds and clone kept in {workspace.root}. "
                f"Run again: {again}"
            ) from None
        # Keep the cache within bounds, never evicting what this hunt used.
        cache.prune(options.cache_size, keep=loop.used_builds)
        return loop.result(steps, again, wall_seconds=time.monotonic() - started)


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
    ) -> None:
        self.hunt = hunt
        self.workspace = workspace
        self.builder = builder
        self.probe = probe
        self.search = search
        self.progress = progress
        self.builds = 0
        self.used_builds: set[Path] = set()  # interpreters this hunt ran

    def run(self) -> list[Step]:
        steps: list[Step] = []
        while (request := self.search.next_request()) is not None:
            sha = self.hunt.old if request.index == OLD_END else self.hunt.graph.shas[request.index]
            commit = self.workspace.commit(sha)
            self.progress.begin_step(
                number=len(steps) + 1,
                total=len(steps) + 1 + self.search.steps_left(),
                remaining=self.search.remaining(),
                commit=commit,
            )
            step = self._visit(commit, request.runs)
            steps.append(step)
            self.progress.end_step(step)
            is_endpoint = request.index in (OLD_END, self.hunt.graph.new_end)
            if is_endpoint:
                self._check_endpoint(step)
            if step.verdict is Verdict.SKIP:
                self.search.record_skip(request.index)
            else:
                self.search.record(
                    request.index,
                    symptoms=step.symptoms,
                    clean=sum(1 for o in step.outcomes if o.run_class is RunClass.CLEAN),
                )
            if is_endpoint:
                self._check_verified(step)
        return steps

    def _visit(self, commit: Commit, runs: int) -> Step:
        self.progress.activity("checkout and build")
        built = self.builder.build(commit.sha)
        self.builds += built.compiled
        if built.interpreter is not None:
            self.used_builds.add(built.interpreter)
        if not built.ok or built.interpreter is None:
            return Step(
                commit=commit,
                verdict=Verdict.SKIP,
                reason=_build_reason(built),
                build_seconds=built.seconds,
                cached=built.cached,
                build_log=str(built.log_path or ""),
            )
        run_start = time.monotonic()
        outcomes = self.probe.run(
            built.interpreter,
            commit.sha,
            runs=runs,
            on_run=lambda i, n: self.progress.activity(f"run {i} of {n}"),
        )
        verdict, reason = _verdict(outcomes)
        return Step(
            commit=commit,
            verdict=verdict,
            reason=reason,
            outcomes=outcomes,
            build_seconds=built.seconds,
            run_seconds=time.monotonic() - run_start,
            cached=built.cached,
            build_log=str(built.log_path or ""),
        )

    def _end_name(self, sha: str) -> str:
        return "--good" if sha == self.hunt.good else "--bad"

    def _check_endpoint(self, step: Step) -> None:
        """Refuse endpoints that cannot be built or only fail in unrelated ways."""
        name = self._end_name(step.commit.sha)
        if not step.outcomes:
            raise BuildError(f"{name} {step.commit.short} does not build: {step.reason}")
        if step.verdict is Verdict.SKIP:
            raise EndpointError(f"{name} {step.commit.short} could not be judged: {step.reason}")

    def _check_verified(self, step: Step) -> None:
        status = self.search.answer().status
        if status in (AnswerStatus.OLD_END_SHOWS_BUG_SIDE, AnswerStatus.NEW_END_SHOWS_CLEAN_SIDE):
            name = self._end_name(step.commit.sha)
            claim = "never shows" if name == "--good" else "shows"
            raise EndpointError(
                f"{name} {step.commit.short} was expected to be the revision that {claim} "
                f"the symptom, but {step.reason}"
            )

    def result(self, steps: list[Step], command: str, *, wall_seconds: float) -> Result:
        answer = self.search.answer()
        shas = self.hunt.graph.shas
        culprit = (
            self.workspace.commit(shas[answer.culprit]) if answer.culprit is not None else None
        )
        candidates = tuple(self.workspace.commit(shas[i]) for i in answer.candidates)
        return Result(
            hunt=self.hunt.kind,
            good=self.workspace.commit(self.hunt.good),
            bad=self.workspace.commit(self.hunt.bad),
            culprit=culprit,
            candidates=() if culprit is not None else candidates,
            probabilities=() if culprit is not None else answer.probabilities,
            confidence=answer.confidence,
            steps=tuple(steps),
            builds=self.builds,
            cached_builds=sum(1 for s in steps if s.cached),
            wall_seconds=wall_seconds,
            command=command,
        )


def _verdict(outcomes: tuple[Outcome, ...]) -> tuple[Verdict, str]:
    """Any symptom makes the revision bad; else any clean run makes it good; else skip."""
    total = len(outcomes)
    symptoms = [o for o in outcomes if o.run_class is RunClass.SYMPTOM]
    if symptoms:
        first = symptoms[0]
        what = {OutcomeKind.CRASH: "crashed", OutcomeKind.HANG: "hung"}.get(first.kind, "failed")
        return Verdict.BAD, f"{len(symptoms)} of {total} runs {what}: {first.signature}"
    if any(o.run_class is RunClass.CLEAN for o in outcomes):
        unrelated = [o for o in outcomes if o.run_class is RunClass.UNRELATED]
        extra = f" ({len(unrelated)} unrelated: {unrelated[0].signature})" if unrelated else ""
        return Verdict.GOOD, f"{total - len(unrelated)} of {total} runs ok{extra}"
    first = outcomes[0]
    return Verdict.SKIP, f"only unrelated failures: {first.kind.value}: {first.signature}"


def _build_reason(built: BuildResult) -> str:
    first_error = f" — {built.error_lines[0]}" if built.error_lines else ""
    return f"build failed: {built.reason}{first_error}"


def reproduce_command(options: HuntOptions, good: str, bad: str) -> str:
    """The `finbisect run` line that repeats this hunt, with the ends pinned to shas."""
    argv = ["finbisect", "run", str(options.repro.resolve()), "--repo", str(options.repo.resolve())]
    argv += ["--good", good, "--bad", bad]
    if options.build.command is not None:
        argv += ["--build-cmd", options.build.command]
    if options.build.interpreter != "python":
        argv += ["--interpreter", options.build.interpreter]
    argv += ["--symptom", ",".join(sorted(kind.value for kind in options.symptoms))]
    if options.match is not None:
        argv += ["--match", options.match.pattern]
    argv += ["--timeout", f"{options.timeout:g}", "--runs", str(options.runs)]
    if options.first_parent:
        argv.append("--first-parent")
    if not options.verify:
        argv.append("--no-verify")
    return shlex.join(argv)
