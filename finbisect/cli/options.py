"""Option parsing shared by the commands: one place for each option's rules."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import platformdirs

from finbisect.build.cache import parse_size
from finbisect.errors import UsageError
from finbisect.models import OutcomeKind

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "CACHE_DIR_OPTION",
    "CACHE_SIZE_OPTION",
    "JSON_OPTION",
    "MARKDOWN_OPTION",
    "POSITIVE",
    "build_options",
    "check_writable",
    "default_cache_dir",
    "given_on_command_line",
    "parse_optional_symptoms",
    "parse_regex",
    "parse_run_symptoms",
    "parse_size_option",
    "parse_symptoms",
]


def parse_symptoms(
    _ctx: click.Context, _param: click.Parameter, value: str
) -> frozenset[OutcomeKind]:
    kinds = [part.strip() for part in value.split(",") if part.strip()]
    allowed = {OutcomeKind.CRASH.value, OutcomeKind.HANG.value, OutcomeKind.ERROR.value}
    bad = [kind for kind in kinds if kind not in allowed]
    if bad or not kinds:
        raise click.BadParameter(
            f"{value!r}: give a comma-separated list of crash, hang, error", param_hint="--symptom"
        )
    return frozenset(OutcomeKind(kind) for kind in kinds)


def parse_run_symptoms(
    ctx: click.Context, param: click.Parameter, value: str
) -> frozenset[OutcomeKind] | None:
    """`run`'s --symptom: the kinds, or None for `slow`, a timing hunt of its own."""
    kinds = {part.strip() for part in value.split(",")}
    if "slow" in kinds:
        if kinds != {"slow"}:
            raise click.BadParameter("slow is a timing hunt of its own: give it alone")
        return None
    return parse_symptoms(ctx, param, value)


def parse_optional_symptoms(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> frozenset[OutcomeKind] | None:
    return None if value is None else parse_symptoms(ctx, param, value)


def parse_regex(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise click.BadParameter(
            f"{value!r} is not a valid regex: {exc}", param_hint="--match"
        ) from None


def parse_size_option(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size like 20G or 500M") from None


def default_cache_dir() -> Path:
    return Path(os.environ.get("FINBISECT_CACHE_DIR") or platformdirs.user_cache_dir("finbisect"))


POSITIVE = click.FloatRange(min=0, min_open=True)


CACHE_DIR_OPTION = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=default_cache_dir,
    show_default="$FINBISECT_CACHE_DIR or the user cache",
)


def given_on_command_line() -> set[str]:
    """Parameters the user typed (as opposed to defaults), so a recipe yields to them."""
    ctx = click.get_current_context()
    return {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }


JSON_OPTION = click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the result as JSON here.",
)
MARKDOWN_OPTION = click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a comment ready for a GitHub issue here.",
)


def check_writable(*paths: Path | None) -> None:
    """Refuse an output file in a missing directory before hours of building, not after."""
    for path in paths:
        if path is not None and not path.resolve().parent.is_dir():
            raise UsageError(f"directory does not exist: {path.parent} (for {path.name})")


CACHE_SIZE_OPTION = click.option(
    "--cache-size",
    default="20G",
    show_default=True,
    callback=lambda _c, _p, v: parse_size_option(v),
    help="Cached builds kept, least recently used evicted first.",
)


def build_options(command: F) -> F:
    """--build-cmd, --interpreter, -j/--jobs, --build-timeout: how revisions are built."""
    decorators = [
        click.option(
            "--build-cmd",
            help="Shell command that builds a revision (default: CPython's own build).",
        ),
        click.option(
            "--interpreter",
            default="python",
            show_default=True,
            help="The built executable, relative to the checkout.",
        ),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(min=1),
            default=os.cpu_count() or 1,
            show_default="number of CPUs",
            help="Build parallelism.",
        ),
        click.option(
            "--build-timeout",
            type=POSITIVE,
            default=3600.0,
            show_default=True,
            help="Seconds a build may take before the revision is skipped.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command
