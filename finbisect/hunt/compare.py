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
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finbisect.build.builder import BuildConfig, Builder, BuildResult
from finbisect.build.cache import (
    RECENT_USE_SECONDS,
    BuildCache,
    split_cache_size,
)
from finbisect.errors import BuildError, GitError
from finbisect.hunt.claim import claim, scratch_dir
from finbisect.hunt.compare_options import CompareItem, CompareOptions
from finbisect.hunt.log_retention import prune_logs
from finbisect.hunt.session import check_cache_dir
from finbisect.models import Commit, RunClass
from finbisect.repo.gitrepo import UserRepo, Workspace, locked_workspace
from finbisect.runs.probe import Probe, ProbeConfig
from finbisect.search.stats import runs_to_rule_out

__all__ = [
    "COMPARE_VERSION",
    "Change",
    "CompareResult",
    "CompareRow",
    "Side",
    "run_compare",
]

COMPARE_VERSION = 1  # the compare --json document

_BATCH = 5
_GIVE_UP = 3  # a side whose runs are mostly unrelated stops at 3x the runs needed


class Change(enum.StrEnum):
    SAME = "same"
    REGRESSED = "regressed"
    FIXED = "fixed"


@dataclass(frozen=True, kw_only=True)
class Side:
    runs: int = 0
    symptoms: int = 0
    unrelated: int = 0
    unrelated_signature: str = ""  # the first unrelated failure's signature
    skip_reason: str = ""  # the repro could not run here at all

    @property
    def informative(self) -> int:
        return self.runs - self.unrelated

    def to_json(self) -> dict[str, int]:
        return {"runs": self.runs, "symptoms": self.symptoms, "unrelated": self.unrelated}


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
    cpython_links: bool = False  # the commits are CPython's: link them on GitHub

    @property
    def regressed(self) -> bool:
        return any(row.change is Change.REGRESSED for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        """The compare --json document (README "Recipes and backport reviews")."""
        return {
            "version": COMPARE_VERSION,
            "a": self.a.sha,
            "b": self.b.sha,
            "rows": [
                {"recipe": r.item.name, "a": r.a.to_json(), "b": r.b.to_json(),
                 "verdict": r.change.value}
                for r in self.rows
            ],
        }  # fmt: skip


def run_compare(options: CompareOptions, progress: Callable[[str], None]) -> CompareResult:
    items = options.items()
    build = options.build_config().for_repros(item.repro for item in items)
    user = UserRepo(options.repo)
    check_cache_dir(options.cache_dir, user)
    a, b = user.resolve(options.a), user.resolve(options.b)
    if a == b:
        raise GitError(f"A and B are the same commit ({a[:12]})")
    with locked_workspace(options.cache_dir, user) as workspace, claim(workspace, progress):
        progress("fetch")
        workspace.refresh([a, b])
        logs = workspace.root / "compares" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        cache = BuildCache(options.cache_dir / "builds")
        shares = split_cache_size(options.cache_size)
        interpreters, builds, descriptions = _build_all(
            items, build, workspace=workspace, cache=cache, logs=logs, a=a, b=b, progress=progress,
            ccache_bytes=shares.ccache,
        )  # fmt: skip
        needed = runs_to_rule_out(options.min_rate, options.confidence)
        rows = []
        for item in items:
            key = _config_key(build, item)
            pair = interpreters[key]
            rows.append(
                _compare_item(
                    item,
                    interpreters=pair,
                    shas=(a, b),
                    needed=needed,
                    logs=logs,
                    scratch=scratch_dir(workspace),
                    progress=progress,
                )
            )
        used = [i for pair in interpreters.values() for i in pair]
        cache.prune(shares.builds, keep=used, spare_used_within=RECENT_USE_SECONDS)
        prune_logs(options.cache_dir, shares.logs, keep=logs)
        return CompareResult(
            a=workspace.commit(a),
            b=workspace.commit(b),
            rows=tuple(rows),
            builds=builds,
            build_descriptions=tuple(descriptions),
            confidence=options.confidence,
            min_rate=options.min_rate,
            cpython_links=workspace.is_cpython(),
        )


def _config_key(build: BuildConfig, item: CompareItem) -> BuildConfig:
    if build.command is not None:
        return build  # the user's own build: flavours do not apply
    return replace(build, flavour=item.flavour, configure_flags=item.configure_flags)


def _build_all(
    items: tuple[CompareItem, ...],
    build: BuildConfig,
    *,
    workspace: Workspace,
    cache: BuildCache,
    logs: Path,
    a: str,
    b: str,
    progress: Callable[[str], None],
    ccache_bytes: int,
) -> tuple[dict[BuildConfig, tuple[Path, Path]], int, list[str]]:
    """Build A and B once per distinct configuration the items need."""
    interpreters: dict[BuildConfig, tuple[Path, Path]] = {}
    builds = 0
    for item in items:
        config = _config_key(build, item)
        if config in interpreters:
            continue
        builder = Builder(workspace, config, logs, cache, ccache_bytes=ccache_bytes)
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
    scratch: Path,
    progress: Callable[[str], None],
) -> CompareRow:
    probe = Probe(
        ProbeConfig(
            repro=item.repro,
            timeout=item.timeout,
            symptoms=item.symptoms,
            match=item.match,
            scratch=scratch,
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
            unrelated = [o.signature for o in outcomes if o.run_class is RunClass.UNRELATED]
            side = Side(
                runs=side.runs + len(outcomes),
                symptoms=side.symptoms + sum(o.run_class is RunClass.SYMPTOM for o in outcomes),
                unrelated=side.unrelated + len(unrelated),
                unrelated_signature=side.unrelated_signature or next(iter(unrelated), ""),
            )
            if side.runs >= _GIVE_UP * needed and side.informative < needed:
                side = replace(
                    side, skip_reason=f"mostly unrelated failures: {side.unrelated_signature}"
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
