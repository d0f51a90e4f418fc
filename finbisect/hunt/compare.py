"""`finbisect compare A B`: does revision B show a known bug that A does not?

For backport reviewers. Both revisions are built (once per flavour the
selected recipes need, cached like any build), then each recipe's repro runs
at A and B, alternating in small batches, until the verdict is settled:
a symptom on both sides (same), or enough clean runs on one side that a bug
showing in at least `min_rate` of runs would have shown with `confidence`.
Under the no-false-positives model a single symptom proves the bug present,
so "regressed" means: B showed it, A never did in all those runs.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from finbisect.build.builder import BuildConfig, Builder, BuildResult
from finbisect.build.cache import RECENT_USE_SECONDS, BuildCache
from finbisect.build.cpython import Flavour
from finbisect.errors import BuildError, GitError
from finbisect.models import Commit, OutcomeKind, RunClass
from finbisect.recipes.catalog import Recipe
from finbisect.repo.gitrepo import UserRepo, Workspace, locked_workspace
from finbisect.runs.probe import Probe, ProbeConfig

__all__ = [
    "Change",
    "CompareItem",
    "CompareOptions",
    "CompareResult",
    "CompareRow",
    "Side",
    "item_from_recipe",
    "run_compare",
    "runs_needed",
]

_BATCH = 5
_GIVE_UP = 3  # a side whose runs are mostly unrelated stops at 3x the runs needed


class Change(enum.StrEnum):
    SAME = "same"
    REGRESSED = "regressed"
    FIXED = "fixed"


@dataclass(frozen=True, kw_only=True)
class CompareItem:
    """One repro to compare: a recipe, or the user's ad-hoc script."""

    name: str  # recipe id, or the script path
    repro: Path
    symptoms: frozenset[OutcomeKind]
    match: re.Pattern[str] | None
    timeout: float
    flavour: Flavour
    configure_flags: tuple[str, ...] = ()


def item_from_recipe(recipe: Recipe) -> CompareItem:
    return CompareItem(
        name=recipe.id,
        repro=recipe.repro,
        symptoms=frozenset(recipe.symptom),
        match=re.compile(recipe.match) if recipe.match else None,
        timeout=recipe.timeout,
        flavour=Flavour(recipe.flavour),
        configure_flags=recipe.build_flags,
    )


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    repo: Path
    a: str
    b: str
    items: tuple[CompareItem, ...]
    build: BuildConfig  # flavour and configure flags are taken per item
    confidence: float = 0.95
    min_rate: float = 0.1  # the rarest symptom rate the comparison must not miss
    cache_dir: Path
    cache_size: int = 20 * 1024**3


@dataclass(frozen=True, kw_only=True)
class Side:
    runs: int = 0
    symptoms: int = 0
    unrelated: int = 0
    skip_reason: str = ""  # the repro could not run here at all

    @property
    def informative(self) -> int:
        return self.runs - self.unrelated


@dataclass(frozen=True, kw_only=True)
class CompareRow:
    item: CompareItem
    a: Side
    b: Side
    change: Change


@dataclass(frozen=True, kw_only=True)
class CompareResult:
    a: Commit
    b: Commit
    rows: tuple[CompareRow, ...]
    builds: int
    build_descriptions: tuple[str, ...]
    confidence: float
    min_rate: float

    @property
    def regressed(self) -> bool:
        return any(row.change is Change.REGRESSED for row in self.rows)


def runs_needed(confidence: float, min_rate: float) -> int:
    """Clean runs after which a bug showing in >= min_rate of runs is ruled out."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - min_rate))


def run_compare(options: CompareOptions, progress: Callable[[str], None]) -> CompareResult:
    options = replace(options, build=options.build.for_repros(i.repro for i in options.items))
    user = UserRepo(options.repo)
    a, b = user.resolve(options.a), user.resolve(options.b)
    if a == b:
        raise GitError(f"A and B are the same commit ({a[:12]})")
    with locked_workspace(options.cache_dir, user) as workspace:
        progress("fetch")
        workspace.refresh([a, b])
        logs = workspace.root / "compares" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        cache = BuildCache(options.cache_dir / "builds")
        interpreters, builds, descriptions = _build_all(
            options, workspace=workspace, cache=cache, logs=logs, a=a, b=b, progress=progress
        )
        needed = runs_needed(options.confidence, options.min_rate)
        rows = []
        for item in options.items:
            key = _config_key(options.build, item)
            pair = interpreters[key]
            rows.append(
                _compare_item(
                    item,
                    interpreters=pair,
                    shas=(a, b),
                    needed=needed,
                    logs=logs,
                    progress=progress,
                )
            )
        used = [i for pair in interpreters.values() for i in pair]
        cache.prune(options.cache_size, keep=used, spare_used_within=RECENT_USE_SECONDS)
        return CompareResult(
            a=workspace.commit(a),
            b=workspace.commit(b),
            rows=tuple(rows),
            builds=builds,
            build_descriptions=tuple(descriptions),
            confidence=options.confidence,
            min_rate=options.min_rate,
        )


def _config_key(build: BuildConfig, item: CompareItem) -> BuildConfig:
    if build.command is not None:
        return build  # the user's own build: flavours do not apply
    return replace(build, flavour=item.flavour, configure_flags=item.configure_flags)


def _build_all(
    options: CompareOptions,
    *,
    workspace: Workspace,
    cache: BuildCache,
    logs: Path,
    a: str,
    b: str,
    progress: Callable[[str], None],
) -> tuple[dict[BuildConfig, tuple[Path, Path]], int, list[str]]:
    """Build A and B once per distinct configuration the items need."""
    interpreters: dict[BuildConfig, tuple[Path, Path]] = {}
    builds = 0
    for item in options.items:
        config = _config_key(options.build, item)
        if config in interpreters:
            continue
        builder = Builder(workspace, config, logs, cache)
        builder.check_tools()
        pair = []
        for name, sha in (("A", a), ("B", b)):
            progress(f"build {name} {sha[:10]} ({config.description})")
            built = builder.build(sha)
            builds += built.compiled
            pair.append(_interpreter(built, name, sha))
        interpreters[config] = (pair[0], pair[1])
    descriptions = [config.description for config in interpreters]
    return interpreters, builds, descriptions


def _interpreter(built: BuildResult, name: str, sha: str) -> Path:
    if not built.ok or built.interpreter is None:
        first = f": {built.error_lines[0]}" if built.error_lines else ""
        raise BuildError(f"{name} {sha[:12]} does not build: {built.reason}{first}")
    return built.interpreter


def _compare_item(
    item: CompareItem,
    *,
    interpreters: tuple[Path, Path],
    shas: tuple[str, str],
    needed: int,
    logs: Path,
    progress: Callable[[str], None],
) -> CompareRow:
    probe = Probe(
        ProbeConfig(
            repro=item.repro, timeout=item.timeout, symptoms=item.symptoms, match=item.match
        ),
        logs / _safe(item.name),
    )
    sides = [Side(), Side()]
    while not all(_done(side, needed) for side in sides):
        for k in (0, 1):
            side = sides[k]
            if _done(side, needed):
                continue
            progress(f"{item.name}: {'AB'[k]} runs {side.runs + 1}-{side.runs + _BATCH}")
            outcomes = probe.run(interpreters[k], shas[k], runs=_BATCH, first_index=side.runs)
            side = Side(
                runs=side.runs + len(outcomes),
                symptoms=side.symptoms + sum(o.run_class is RunClass.SYMPTOM for o in outcomes),
                unrelated=side.unrelated + sum(o.run_class is RunClass.UNRELATED for o in outcomes),
            )
            if side.runs >= _GIVE_UP * needed and side.informative < needed:
                unrelated = next(o for o in outcomes if o.run_class is RunClass.UNRELATED)
                side = replace(
                    side, skip_reason=f"mostly unrelated failures: {unrelated.signature}"
                )
            sides[k] = side
    return CompareRow(item=item, a=sides[0], b=sides[1], change=_change(sides[0], sides[1]))


def _done(side: Side, needed: int) -> bool:
    """A symptom settles a side; so do enough clean runs, or giving up on unrelated ones."""
    return bool(side.symptoms or side.informative >= needed or side.skip_reason)


def _change(a: Side, b: Side) -> Change:
    if a.skip_reason or b.skip_reason:
        return Change.SAME  # reported with the reason; nothing proves a change
    if b.symptoms and not a.symptoms:
        return Change.REGRESSED
    if a.symptoms and not b.symptoms:
        return Change.FIXED
    return Change.SAME


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[-80:]
