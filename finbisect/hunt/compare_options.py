"""What `finbisect compare A B` is asked to do: its options, declared once, and the repros.

The build and cache options are `finbisect run`'s own declarations; the rest
say which repros to compare with (bundled recipes, a directory of them, a
selection, or one ad-hoc script) and how hard to look.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from finbisect.build.builder import BuildConfig
from finbisect.build.cpython import parse_workaround
from finbisect.errors import UsageError
from finbisect.hunt.option_model import Kind, Option, parse_float, parse_path, to_argv
from finbisect.hunt.options import BUILD_OPTIONS, CACHE_OPTIONS, RUN_OPTIONS
from finbisect.models import Flavour, OutcomeKind
from finbisect.recipes.catalog import Recipe, bundled_recipes_dir, load_all

__all__ = ["COMPARE_OPTIONS", "CompareItem", "CompareOptions", "item_from_recipe"]

_RUN = {option.name: option for option in RUN_OPTIONS}


def _override(name: str, help_text: str) -> Option:
    """A `run` option that, for compare, overrides what each recipe says (no default)."""
    run_option = _RUN[name]
    return Option(name=name, flags=run_option.flags, help=help_text, parse=run_option.parse,
                  show=run_option.show, metavar=run_option.metavar)  # fmt: skip


COMPARE_OPTIONS: tuple[Option, ...] = (
    Option(name="a", flags=(), kind=Kind.ARGUMENT, help="The reference revision."),
    Option(name="b", flags=(), kind=Kind.ARGUMENT, help="The revision under review."),
    _RUN["repo"],
    Option(name="recipes_dir", flags=("--recipes",), parse=parse_path,
           help="Compare with every recipe in this directory (default: the bundled ones)."),
    Option(name="only", flags=("--only",), help="Comma-separated recipe ids to compare with."),
    Option(name="repro", flags=("--repro",), parse=parse_path,
           help="Compare with this one script instead of recipes."),
    *BUILD_OPTIONS,
    _override("symptom", "Run kinds that count as the symptom (overrides recipes')."),
    _override("match", "Regex a crash's output must match (overrides recipes')."),
    _override("timeout", "Seconds per run (overrides recipes'; default 60 for --repro)."),
    Option(name="confidence", flags=("--confidence",), parse=parse_float(low=0.5, high=0.9999),
           show=_RUN["confidence"].show, default=0.95,
           help="How sure a clean side must be that it does not show the symptom."),
    Option(name="min_rate", flags=("--min-rate",), parse=parse_float(low=0.001, high=1.0),
           show=_RUN["confidence"].show, default=0.1,
           help="The rarest symptom rate a clean side must rule out."),
    *CACHE_OPTIONS,
)  # fmt: skip


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
        flavour=recipe.flavour,
        configure_flags=recipe.build_flags,
    )


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    """The values of COMPARE_OPTIONS, one field each."""

    a: str
    b: str
    repo: Path
    recipes_dir: Path | None = None
    only: str | None = None
    repro: Path | None = None
    build_cmd: str | None = None
    interpreter: str = "python"
    jobs: int = 1
    build_timeout: float = 3600.0
    flavour: Flavour | None = None
    configure_flags: tuple[str, ...] = ()
    workarounds: tuple[str, ...] = ()
    ccache: bool = True
    symptom: str | None = None
    match: str | None = None
    timeout: float | None = None
    confidence: float = 0.95
    min_rate: float = 0.1  # the rarest symptom rate the comparison must not miss
    cache_dir: Path
    cache_size: int = 20 * 1024**3

    def __post_init__(self) -> None:
        if self.build_cmd is not None and self.flavour is not None:
            raise UsageError("--flavour configures CPython's own build; not with --build-cmd")
        if self.repro is not None and (self.recipes_dir is not None or self.only is not None):
            raise UsageError("--repro compares one script; not with --recipes or --only")
        if self.symptom == "slow":
            raise UsageError("compare judges crashes, hangs and errors; not --symptom slow")

    def build_config(self) -> BuildConfig:
        """The shared build settings; flavour and configure flags are taken per item."""
        return BuildConfig(
            command=self.build_cmd,
            interpreter=self.interpreter,
            jobs=self.jobs,
            timeout=self.build_timeout,
            workarounds=tuple(parse_workaround(spec) for spec in self.workarounds),
            use_ccache=self.ccache,
        )

    def command(self, a: str, b: str) -> str:
        """The `finbisect compare` line that repeats this comparison, A and B pinned."""
        pinned = replace(self, a=a, b=b)
        return shlex.join(to_argv(["finbisect", "compare"], pinned, COMPARE_OPTIONS))

    def items(self) -> tuple[CompareItem, ...]:
        """The ad-hoc --repro, or the selected recipes, with the command line's overrides."""
        symptoms = frozenset(map(OutcomeKind, self.symptom.split(","))) if self.symptom else None
        match = re.compile(self.match) if self.match is not None else None
        if self.repro is not None:
            return (
                CompareItem(
                    name=str(self.repro),
                    repro=self.repro,
                    symptoms=symptoms or frozenset({OutcomeKind.CRASH, OutcomeKind.HANG}),
                    match=match,
                    timeout=self.timeout or 60.0,
                    flavour=self.flavour or Flavour.PYDEBUG,
                    configure_flags=self.configure_flags,
                ),
            )
        available = load_all(self.recipes_dir or bundled_recipes_dir())
        if self.only is not None:
            wanted = [part.strip() for part in self.only.split(",") if part.strip()]
            known = {r.id for r in available}
            if unknown := [w for w in wanted if w not in known]:
                raise UsageError(
                    f"--only: no recipe {', '.join(unknown)} (see `finbisect recipes`)"
                )
            available = [r for r in available if r.id in wanted]
        items = []
        for recipe in available:
            item = item_from_recipe(recipe)
            items.append(
                CompareItem(
                    name=item.name,
                    repro=item.repro,
                    symptoms=symptoms or item.symptoms,
                    match=match or item.match,
                    timeout=self.timeout or item.timeout,
                    flavour=item.flavour,
                    configure_flags=(*item.configure_flags, *self.configure_flags),
                )
            )
        return tuple(items)
