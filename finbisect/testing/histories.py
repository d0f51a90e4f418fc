"""Generated histories with their answers: straight ones, merged side branches.

Each returns a GeneratedHistory: the repository, its ends, and the commit a
bisection must name (tests compare, the demo tells its story on top).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finbisect.testing.minipy import NOTES, HistoryBuilder, check_knobs

__all__ = [
    "AUTHORS",
    "GeneratedHistory",
    "Symptom",
    "history_of",
    "linear_history",
    "merge_history",
]

Symptom = Literal["crash", "hang", "error", "slow"]


@dataclass(frozen=True, kw_only=True)
class GeneratedHistory:
    """A generated repository and the answer a bisection of it must give.

    ``culprit`` is the first "new" commit over all commits (a side-branch commit
    for ``merge_history``); ``first_parent_culprit`` the one ``--first-parent``
    must name (the merge commit there, ``culprit`` otherwise).
    """

    path: Path
    good: str
    bad: str
    culprit: str
    first_parent_culprit: str
    shas: tuple[str, ...]  # every commit reachable from main, oldest first
    mainline: tuple[str, ...]  # main's first-parent chain, oldest first
    broken: tuple[str, ...] = ()  # revisions that do not build
    unrelated: tuple[str, ...] = ()  # revisions that segfault instead


def history_of(
    builder: HistoryBuilder,
    *,
    good: str,
    bad: str,
    culprit: str,
    first_parent_culprit: str | None = None,
    broken: Collection[str] = (),
    unrelated: Collection[str] = (),
) -> GeneratedHistory:
    """The answer sheet for what `builder` made: ends, culprit, every sha of main."""

    def rev_list(*args: str) -> tuple[str, ...]:
        return tuple(builder._git("rev-list", "--reverse", *args, "main").split())

    return GeneratedHistory(
        path=builder.path,
        good=good,
        bad=bad,
        culprit=culprit,
        first_parent_culprit=first_parent_culprit or culprit,
        shas=rev_list("--date-order"),
        mainline=rev_list("--first-parent"),
        broken=tuple(broken),
        unrelated=tuple(unrelated),
    )


def _symptom_knobs(
    symptom: Symptom, *, on: bool, crash_percent: int, slow_ms: int
) -> dict[str, int]:
    if symptom == "crash":
        return {"EXIT_CRASH_PERCENT": crash_percent if on else 0}
    if symptom == "hang":
        return {"EXIT_HANG": int(on)}
    if symptom == "error":
        return {"EXIT_ERROR": int(on)}
    return {"EXIT_SLOW_MS": slow_ms if on else 0}


def linear_history(
    path: Path,
    *,
    commits: int,
    culprit: int,
    fix: bool = False,
    symptom: Symptom = "crash",
    crash_percent: int = 100,
    crash_percent_before: int = 0,
    broken: Collection[int] = (),
    unrelated: Collection[int] = (),
    slow_ms: int = 0,
    jitter_ms: int = 0,
) -> GeneratedHistory:
    """A straight history of ``commits`` commits; commit ``culprit`` flips the symptom.

    Regression (default): commits ``culprit``.. show the symptom; good = commit 0,
    bad = the last. ``fix=True``: commits ..``culprit - 1`` show it; good = the
    last, bad = commit 0. ``broken`` commits do not build (the next one does
    again); ``unrelated`` commits segfault *instead of* their own behaviour.
    Neither may be an end. ``slow_ms`` delays every exit, except with
    ``symptom="slow"``, where the delay is the symptom. ``jitter_ms`` applies to all.
    ``crash_percent_before``: the crash's rate on the other side of the culprit (a
    rare race made frequent: two-sided noise).
    """
    if commits < 2 or not 1 <= culprit < commits:
        raise ValueError(f"need commits >= 2 and 1 <= culprit < commits, not {commits}/{culprit}")
    for label, indices in (("broken", broken), ("unrelated", unrelated)):
        if any(not 0 < i < commits - 1 for i in indices):
            raise ValueError(f"{label} commits must lie strictly between the ends: {indices}")
    if symptom == "slow" and slow_ms <= 0:
        raise ValueError('symptom="slow" needs slow_ms > 0')
    check_knobs({"EXIT_CRASH_PERCENT": crash_percent, "EXIT_SLOW_MS": slow_ms})
    check_knobs({"EXIT_CRASH_PERCENT": crash_percent_before})
    check_knobs({"EXIT_JITTER_MS": jitter_ms})

    builder = HistoryBuilder(path)
    verb = "Fix" if fix else "Introduce"
    shas: list[str] = []
    for i in range(commits):
        on = (i >= culprit) != fix
        knobs = _symptom_knobs(symptom, on=on, crash_percent=crash_percent, slow_ms=slow_ms)
        if symptom == "crash" and not on:
            knobs["EXIT_CRASH_PERCENT"] = crash_percent_before
        if symptom != "slow":
            knobs["EXIT_SLOW_MS"] = slow_ms
        knobs.update(
            EXIT_JITTER_MS=jitter_ms,
            BROKEN_BUILD=int(i in broken),
            UNRELATED_CRASH=int(i in unrelated),
        )
        if i == 0:
            subject = "Initial import of minipy"
        elif i == culprit:
            subject = f"gh-{1000 + i}: {verb} the {symptom} at exit"
        else:
            subject = f"gh-{1000 + i}: Routine change number {i}"
        shas.append(builder.commit_knobs(subject, knobs))
    good, bad = (shas[-1], shas[0]) if fix else (shas[0], shas[-1])
    return history_of(
        builder,
        good=good,
        bad=bad,
        culprit=shas[culprit],
        broken=[shas[i] for i in sorted(broken)],
        unrelated=[shas[i] for i in sorted(unrelated)],
    )


def merge_history(
    path: Path,
    *,
    before: int = 3,
    side: int = 4,
    side_culprit: int = 2,
    after: int = 2,
    symptom: Symptom = "crash",
    crash_percent: int = 100,
) -> GeneratedHistory:
    """The symptom arrives on a side branch merged into main.

    main: ``before`` commits (the first is the initial import), the branch point,
    one more main commit, the merge, ``after`` more commits. The side branch has
    ``side`` commits; side commit ``side_culprit`` (0-based) turns the symptom on.
    ``culprit`` is that side commit; ``first_parent_culprit`` the merge commit.
    """
    if before < 1 or after < 0 or not 0 <= side_culprit < side:
        raise ValueError("need before >= 1, after >= 0 and 0 <= side_culprit < side")
    builder = HistoryBuilder(path)
    good = builder.commit("Initial import of minipy")
    for i in range(1, before):
        builder.commit(f"gh-{2000 + i}: Main change number {i}")
    builder.branch("feature")
    side_shas = []
    for i in range(side):
        knobs = (
            _symptom_knobs(symptom, on=True, crash_percent=crash_percent, slow_ms=250)
            if i == side_culprit
            else {}
        )
        subject = f"gh-3000: Side change number {i}" + (" (the culprit)" if knobs else "")
        side_shas.append(builder.commit_knobs(subject, knobs, touch=NOTES, author=AUTHORS[1]))
    builder.switch("main")
    builder.commit("gh-2100: Main change while the branch is open")
    merge = builder.merge("feature", "Merge branch 'feature' into main")
    bad = merge
    for i in range(after):
        bad = builder.commit(f"gh-{2200 + i}: Main change after the merge {i}")
    return history_of(
        builder, good=good, bad=bad, culprit=side_shas[side_culprit], first_parent_culprit=merge
    )


AUTHORS = (
    "Ana Pires <ana.pires@example.org>",
    "Ben Okafor <bokafor@example.org>",
    "Chen Wei <chenwei@example.org>",
    "Dana Kowalski <dana@example.org>",
    "Eli Sato <eli.sato@example.org>",
    "Farah Haddad <farah@example.org>",
    "Gustav Lindqvist <gustav@example.org>",
)
