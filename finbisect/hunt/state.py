"""A hunt's saved state: written after every visit, read to resume, list and log.

One versioned JSON file per hunt, `<cache entry>/hunts/<id>/state.json`, next
to that hunt's build and run logs. A hunt is identified for resuming by a key
over everything that decides its answer (ends, repro and its content, build
configuration, symptom rules, search settings), so re-running the same
command continues an interrupted hunt, and a changed command starts afresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finbisect.errors import UsageError
from finbisect.models import Commit, Outcome, OutcomeKind, RunClass, Step, Verdict

__all__ = [
    "STATE_VERSION",
    "HuntState",
    "SavedVisit",
    "find_hunt",
    "git_bisect_log",
    "iter_hunts",
    "iter_hunts_in",
]

STATE_VERSION = 1
STATE_FILE = "state.json"


@dataclass(frozen=True, kw_only=True)
class SavedVisit:
    index: int  # candidate index, or strategy.OLD_END
    compiled: bool
    step: Step
    implied: str = ""  # git bisect term implied by the final answer ("new"/"old"/"skip")


@dataclass(kw_only=True)
class HuntState:
    """Mutable while the hunt runs; saved after every visit."""

    directory: Path
    key: str
    kind: str  # "regression" | "fix"
    repo: str
    good: str
    bad: str
    command: str
    started: str
    status: str = "running"  # running | interrupted | finished | failed
    visits: list[SavedVisit]
    answer: str = ""  # one line, when the hunt ended
    culprit: str | None = None

    @property
    def id(self) -> str:
        return self.directory.name

    def save(self) -> None:
        data = {
            "version": STATE_VERSION,
            "key": self.key,
            "kind": self.kind,
            "repo": self.repo,
            "good": self.good,
            "bad": self.bad,
            "command": self.command,
            "started": self.started,
            "status": self.status,
            "answer": self.answer,
            "culprit": self.culprit,
            "visits": [_visit_json(v) for v in self.visits],
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> HuntState:
        path = directory / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read hunt state {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise UsageError(
                f"{path} was written by another finbisect version (state version "
                f"{data.get('version') if isinstance(data, dict) else '?'}; this one reads "
                f"{STATE_VERSION})"
            )
        return cls(
            directory=directory,
            key=data["key"],
            kind=data["kind"],
            repo=data["repo"],
            good=data["good"],
            bad=data["bad"],
            command=data["command"],
            started=data["started"],
            status=data["status"],
            answer=data.get("answer", ""),
            culprit=data.get("culprit"),
            visits=[_visit_from_json(v) for v in data["visits"]],
        )


def iter_hunts(cache_dir: Path) -> Iterator[HuntState]:
    """Every readable saved hunt under `cache_dir`, newest first."""
    return _newest_first(cache_dir.glob(f"repos/*/hunts/*/{STATE_FILE}"))


def iter_hunts_in(hunts_dir: Path) -> Iterator[HuntState]:
    """The saved hunts of one cache entry, newest first."""
    return _newest_first(hunts_dir.glob(f"*/{STATE_FILE}"))


def _newest_first(found: Iterable[Path]) -> Iterator[HuntState]:
    for path in sorted(found, key=lambda p: p.parent.name, reverse=True):
        try:
            yield HuntState.load(path.parent)
        except UsageError:
            continue


def find_hunt(cache_dir: Path, hunt_id: str | None) -> HuntState:
    """The hunt `hunt_id` (or a unique prefix of it); the newest when None."""
    hunts = list(iter_hunts(cache_dir))
    if not hunts:
        raise UsageError(f"no hunts recorded in {cache_dir}")
    if hunt_id is None:
        return hunts[0]
    matches = [h for h in hunts if h.id.startswith(hunt_id)]
    if len(matches) != 1:
        what = "no hunt" if not matches else f"{len(matches)} hunts"
        raise UsageError(f"{what} matching {hunt_id!r} in {cache_dir} (see `finbisect runs`)")
    return matches[0]


def git_bisect_log(state: HuntState) -> str:
    """The hunt as `git bisect log` would print it; `git bisect replay` accepts it.

    Each tested revision gets the verdict the final answer implies (for a noisy
    search, a revision that happened to show no symptom but lies after the
    culprit is "bad"); unfinished hunts use the verdicts as observed.
    """
    regression = state.kind == "regression"
    old, new = ("good", "bad") if regression else ("broken", "fixed")
    lines = [f"# finbisect hunt {state.id} ({state.kind}): {state.answer or state.status}"]
    lines.append(
        "git bisect start" + ("" if regression else " '--term-old=broken' '--term-new=fixed'")
    )
    seen = set()
    for visit in state.visits:
        sha = visit.step.commit.sha
        if sha in seen:
            continue
        seen.add(sha)
        term = {"new": new, "old": old, "skip": "skip"}[
            visit.implied or _observed(visit, regression)
        ]
        lines.append(f"# {term}: [{sha}] {visit.step.commit.subject}")
        lines.append(f"git bisect {term} {sha}")
    if state.culprit is not None:
        subject = next(
            (v.step.commit.subject for v in state.visits if v.step.commit.sha == state.culprit), ""
        )
        lines.append(f"# first {new} commit: [{state.culprit}] {subject}")
    return "\n".join(lines) + "\n"


def _observed(visit: SavedVisit, regression: bool) -> str:
    if visit.step.verdict is Verdict.SKIP:
        return "skip"
    bad = visit.step.verdict is Verdict.BAD
    return "new" if bad == regression else "old"


def _visit_json(visit: SavedVisit) -> dict[str, Any]:
    step = visit.step
    return {
        "index": visit.index,
        "compiled": visit.compiled,
        "implied": visit.implied,
        "commit": {
            "sha": step.commit.sha,
            "subject": step.commit.subject,
            "author": step.commit.author,
            "date": step.commit.date,
            "message": step.commit.message,
        },
        "verdict": step.verdict.value,
        "reason": step.reason,
        "build_seconds": step.build_seconds,
        "run_seconds": step.run_seconds,
        "cached": step.cached,
        "build_log": step.build_log,
        "timing": dict(step.timing) if step.timing is not None else None,
        "outcomes": [
            {
                "kind": o.kind.value,
                "run_class": o.run_class.value,
                "returncode": o.returncode,
                "signal": o.signal,
                "duration": o.duration,
                "signature": o.signature,
                "log_path": o.log_path,
            }
            for o in step.outcomes
        ],
    }


def _visit_from_json(data: dict[str, Any]) -> SavedVisit:
    step = Step(
        commit=Commit(**data["commit"]),
        verdict=Verdict(data["verdict"]),
        reason=data["reason"],
        outcomes=tuple(
            Outcome(
                kind=OutcomeKind(o["kind"]),
                run_class=RunClass(o["run_class"]),
                returncode=o["returncode"],
                signal=o["signal"],
                duration=o["duration"],
                signature=o["signature"],
                log_path=o["log_path"],
            )
            for o in data["outcomes"]
        ),
        build_seconds=data["build_seconds"],
        run_seconds=data["run_seconds"],
        cached=data["cached"],
        build_log=data["build_log"],
        timing=data.get("timing"),
    )
    return SavedVisit(
        index=data["index"], compiled=data["compiled"], step=step, implied=data.get("implied", "")
    )
