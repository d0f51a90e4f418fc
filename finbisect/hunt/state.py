"""A hunt's saved state: written after every visit, read to resume, list and log.

One versioned JSON file per hunt, `<cache entry>/hunts/<id>/state.json`, next
to that hunt's build and run logs. A hunt is identified for resuming by a key
over everything that decides its answer (ends, repro and its content, build
configuration, symptom rules, search settings), so re-running the same
command continues an interrupted hunt, and a changed command starts afresh.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finbisect.errors import MachineError, UsageError
from finbisect.models import SchemaError, Step, Verdict, check_version

__all__ = [
    "STATE_VERSION",
    "HuntState",
    "SavedVisit",
    "find_hunt",
    "git_bisect_log",
    "iter_hunts",
    "unfinished_hunt",
]

STATE_VERSION = 2  # 2: visits hold Step's own JSON (the --json result's step shape)
STATE_FILE = "state.json"


@dataclass(frozen=True, kw_only=True)
class SavedVisit:
    index: int  # candidate index, or strategy.OLD_END
    compiled: bool
    step: Step
    implied: str = ""  # git bisect term implied by the final answer ("new"/"old"/"skip")

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "compiled": self.compiled,
            "implied": self.implied,
            "step": self.step.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedVisit:
        return cls(
            index=data["index"],
            compiled=data["compiled"],
            implied=data["implied"],
            step=Step.from_json(data["step"]),
        )


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
            "visits": [v.to_json() for v in self.visits],
        }
        tmp = self.directory / f".{STATE_FILE}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(self.directory / STATE_FILE)
        except OSError as exc:  # a full disk, say: the last saved state stays as it was
            tmp.unlink(missing_ok=True)
            raise MachineError(
                f"cannot save hunt state in {self.directory}: {exc.strerror}"
            ) from None

    def end(self, status: str, answer: str) -> None:
        self.status, self.answer = status, answer
        self.save()

    def end_quietly(self, status: str, answer: str) -> None:
        """End on the way out of an error: that error is the one to report, not this."""
        with contextlib.suppress(MachineError):
            self.end(status, answer)

    @classmethod
    def load(cls, directory: Path) -> HuntState:
        path = directory / STATE_FILE
        try:
            data = check_version(json.loads(path.read_text()), STATE_VERSION, str(path))
            return cls._from_json(directory, data)
        except SchemaError as exc:
            raise UsageError(str(exc)) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read hunt state {path}: {exc!r}") from None

    @classmethod
    def _from_json(cls, directory: Path, data: dict[str, Any]) -> HuntState:
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
            visits=[SavedVisit.from_json(v) for v in data["visits"]],
        )


def iter_hunts(cache_dir: Path) -> Iterator[HuntState]:
    """Every readable saved hunt under `cache_dir`, newest first."""
    return _newest_first(cache_dir.glob(f"repos/*/hunts/*/{STATE_FILE}"))


def unfinished_hunt(hunts_dir: Path, key: str, *, note: Callable[[str], None]) -> HuntState | None:
    """The newest saved hunt with this key if it did not finish (the lock makes it not
    running): a hunt to resume. Unreadable states are skipped, and `note` says so."""
    for path in sorted(
        hunts_dir.glob(f"*/{STATE_FILE}"), key=lambda p: p.parent.name, reverse=True
    ):
        try:
            state = HuntState.load(path.parent)
        except UsageError as exc:
            note(f"not resuming from {path.parent.name}: {exc.message}")
            continue
        if state.key == key:
            return state if state.status in ("running", "interrupted") else None
    return None


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
    marks: dict[str, tuple[str, str]] = {}  # sha -> (term, subject), in visit order
    for visit in state.visits:
        term = {"new": new, "old": old, "skip": "skip"}[
            visit.implied or _observed(visit, regression)
        ]
        marks.setdefault(visit.step.commit.sha, (term, visit.step.commit.subject))
    # git keeps one "new" ref, the last one marked: a later revision marked new after
    # the culprit would replace it and leave the replay short of an answer.
    if state.culprit in marks and marks[state.culprit][0] == new:
        marks[state.culprit] = marks.pop(state.culprit)
    for sha, (term, subject) in marks.items():
        lines.append(f"# {term}: [{sha}] {subject}")
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
