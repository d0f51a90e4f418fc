"""The hunt loop: ask the search, build, judge, record, until the answer is known.

One visit at a time on this machine (on a cluster, rounds.py drives the same loop's
saving and recording). Each visit claims its interpreter (built ahead in the
background, from the cache, or built now), has the judge turn its runs into a Step,
saves the state and tells the search; the visit's likely successors are built ahead
meanwhile (build_ahead.py). Endpoints that show the wrong side are refused here.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

from finbisect.build.builder import Builder, BuildResult
from finbisect.errors import BuildError, EndpointError
from finbisect.hunt.build_ahead import GUESS_ENV, BuildAhead, Guess, likely_next, wrong_guess
from finbisect.hunt.judge import Judge, Judged
from finbisect.hunt.progress import Progress, eta_seconds
from finbisect.hunt.state import HuntState, SavedVisit
from finbisect.hunt.steps import build_reason, merge_visits
from finbisect.models import Commit, Result, RunClass, Step, Verdict
from finbisect.repo.gitrepo import Hunt, Workspace
from finbisect.search.strategy import OLD_END, AnswerStatus, Search, SearchRequest, VisitCost

__all__ = ["HuntLoop"]


class HuntLoop:
    """Visits revisions until the search knows the answer, saving the state after each."""

    def __init__(
        self,
        *,
        hunt: Hunt,
        workspace: Workspace,
        builder: Builder,
        judge: Judge,
        progress: Progress,
        state: HuntState,
        ahead: BuildAhead,
    ) -> None:
        self.hunt = hunt
        self.workspace = workspace
        self.builder = builder
        self.judge = judge
        self.search: Search = judge.make_search(hunt)
        self.progress = progress
        self.state = state
        self.ahead = ahead
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
        try:
            self._run()
        finally:
            self.ahead.close()  # nothing left building, whatever ended the loop
        if self.ahead.stats.started:
            self.progress.note(self.ahead.stats.message())
        if self.ahead.problem:
            self.progress.note(f"building ahead: {self.ahead.problem}")

    def _run(self) -> None:
        prepared = self.judge.prepare(self.hunt, self._build_end, self.workspace.commit)
        if not self.state.visits:  # a resumed hunt saved these the first time
            for step in prepared:
                self._save(self._index_of(step.commit.sha), step, compiled=False)
                self.progress.end_step(step)
        while (request := self._next_request()) is not None:
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
            visit, compiled = self._visit(request, commit)
            self._save(index, visit, compiled=compiled)
            # Show the revision's totals so far: one visit of a flaky bad revision
            # may well have shown no symptom.
            self.progress.end_step(self._merged(commit.sha))
            self._record(index, visit, compiled=compiled)
            self._say_new_notes()

    def _next_request(self) -> SearchRequest | None:
        built = self.ahead.built()
        if built:  # built ahead: a visit there costs no build now
            self.search.mark_built(self._index_of(sha) for sha in built)
        return self.search.next_request()

    def _build_ahead(self, request: SearchRequest) -> None:
        """Start building what the search will probably ask for after this request's runs.

        Not in a two-sided hunt: its verdicts compare symptom rates between revisions, and
        a build's load (even at the lowest priority) might change a race's rate."""
        if not self.ahead.enabled or self.ahead.busy:
            return
        graph, bug_is_new = self.hunt.graph, self.hunt.bug_is_new
        # A copy as it is now (the loop records into the search meanwhile); the graph is
        # immutable and shared. The planning runs in the background thread.
        search = copy.deepcopy(self.search, {id(graph): graph})
        wrong = os.environ.get(GUESS_ENV) == Guess.WRONG.value

        def guess() -> list[str]:
            if search.summary().p_before is not None:
                return []
            wanted = likely_next(search, request, graph, bug_is_new=bug_is_new)
            if wrong:
                wanted = wrong_guess(request, graph, wanted)
            return [self._sha_at(index) for index in wanted]

        self.ahead.start(guess)

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
        built = self.ahead.claim(sha) or self.builder.build(sha)
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

    def _visit(self, request: SearchRequest, commit: Commit) -> tuple[Step, bool]:
        index, runs = request.index, request.runs
        again = any(v.commit.sha == commit.sha for v in self.visits)
        # A revisit takes its build from the cache: say so, not "build" (noisy searches
        # come back to a revision for more runs often).
        self.progress.activity("more runs, built already" if again else "checkout and build")
        built = self._build(commit.sha)
        if not built.ok or built.interpreter is None:
            if index in (OLD_END, self.hunt.graph.new_end):
                name = self._end_name(commit.sha)
                raise BuildError(f"{name} {commit.short} does not build: {build_reason(built)}")
            judged = Judged(verdict=Verdict.SKIP, reason=build_reason(built))
            run_seconds = 0.0
        else:
            self._build_ahead(request)
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
        symptom_runs = [o for o in visit.outcomes if o.run_class is RunClass.SYMPTOM]
        cost = VisitCost(
            build_seconds=visit.build_seconds if compiled else None,
            run_seconds=visit.run_seconds,
            runs=visit.runs,
            symptom_runs=len(symptom_runs),
            symptom_seconds=sum(o.duration for o in symptom_runs),
        )
        self.search.record_costs(index, cost)
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
            built_ahead=self.ahead.stats.to_json(),
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
