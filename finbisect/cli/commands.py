"""The smaller commands: cache, recipes, runs, log and compare.

Registered on the main group by app.py; like run.py they only parse, call
and print what output/ formats.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from finbisect.build.cache import BuildCache, format_size, split_cache_size
from finbisect.build.doctor import Status, diagnose
from finbisect.cli.params import (
    JSON_OPTION,
    MARKDOWN_OPTION,
    check_writable,
    declared,
    resolve,
)
from finbisect.errors import ExitCode, UsageError
from finbisect.hunt.compare import run_compare
from finbisect.hunt.compare_options import COMPARE_OPTIONS, CompareOptions
from finbisect.hunt.log_retention import log_folders, prune_logs
from finbisect.hunt.options import CACHE_OPTIONS, default_cache_dir
from finbisect.hunt.state import find_hunt, git_bisect_log, iter_hunts
from finbisect.output.markdown import compare_markdown
from finbisect.output.terminal import (
    format_checks,
    format_compare,
    format_hunt_list,
    format_recipe,
    format_recipe_list,
    write_json,
)
from finbisect.recipes.catalog import bundled_recipes_dir, find_recipe, load_all, recipe_to_dict
from finbisect.runs.machine import machine_facts

__all__ = ["COMMANDS"]

_CACHE_DIR, _CACHE_SIZE = CACHE_OPTIONS
CACHE_DIR_OPTION = declared((_CACHE_DIR,))


def _cache(cache_dir: Path | None) -> BuildCache:
    return BuildCache((cache_dir or default_cache_dir()) / "builds")


@click.group()
def cache() -> None:
    """List, prune or clear cached builds."""


@cache.command("list")
@CACHE_DIR_OPTION
def cache_list(*, cache_dir: Path | None) -> int:
    """Cached builds, most recently used first, with the bytes each alone holds."""
    cache = _cache(cache_dir)
    builds = cache.entries()
    for build in builds:
        state = "ok" if build.ok else f"failed: {build.reason}"
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(build.last_used))
        click.echo(
            f"{build.sha[:12]}  {format_size(build.size):>10}  {used}  {build.description}  {state}"
        )
    total = cache.total_bytes()  # files the builds share counted once
    shared = format_size(max(0, total - sum(b.size for b in builds)))
    click.echo(
        f"{len(builds)} builds, {format_size(total)} in {cache.root.parent} "
        f"({shared} of it in files builds share)"
    )
    logs = log_folders(cache.root.parent)
    click.echo(f"{len(logs)} hunts' and compares' logs, {format_size(sum(f.size for f in logs))}")
    return 0


@cache.command("prune")
@CACHE_DIR_OPTION
@declared(
    (
        replace(
            _CACHE_SIZE,
            name="max_size",
            flags=("--max-size",),
            help="Shrink the cache (builds, then old hunts' logs) to this size.",
        ),
    )
)
def cache_prune(*, cache_dir: Path | None, max_size: int | None) -> int:
    """Evict least recently used builds, then old hunts' logs, beyond --max-size."""
    cache = _cache(cache_dir)
    shares = split_cache_size(_CACHE_SIZE.default if max_size is None else max_size)
    removed = cache.prune(shares.builds)
    click.echo(f"removed {len(removed)} builds, {format_size(sum(b.size for b in removed))}")
    dropped = prune_logs(cache.root.parent, shares.logs)
    if dropped:
        freed = format_size(sum(f.size for f in dropped))
        click.echo(f"removed the logs of {len(dropped)} old hunts and compares, {freed}")
    return 0


@cache.command("clear")
@CACHE_DIR_OPTION
def cache_clear(*, cache_dir: Path | None) -> int:
    """Remove every cached build (clones and logs stay)."""
    removed = _cache(cache_dir).clear()
    click.echo(f"removed {len(removed)} builds, {format_size(sum(b.size for b in removed))}")
    return 0


@click.group(invoke_without_command=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="A directory of recipes (default: the bundled ones).",
)
@click.pass_context
def recipes(ctx: click.Context, *, output_format: str, directory: Path | None) -> int:
    """Recipes for known finalization bugs: list them, or `show ID`."""
    ctx.obj = directory
    if ctx.invoked_subcommand is not None:
        return 0
    found = load_all(directory or bundled_recipes_dir())
    if output_format == "json":
        click.echo(json.dumps([recipe_to_dict(r) for r in found], indent=2))
    else:
        click.echo(format_recipe_list(found), nl=False)
    return 0


@recipes.command("show")
@click.argument("recipe_id")
@click.pass_context
def recipes_show(ctx: click.Context, *, recipe_id: str) -> int:
    """Everything one recipe says: mechanism, links, hunts, repro."""
    directory = ctx.obj if isinstance(ctx.obj, Path) else None
    click.echo(format_recipe(find_recipe(recipe_id, directory)), nl=False)
    return 0


@click.command()
@CACHE_DIR_OPTION
def runs(*, cache_dir: Path | None) -> int:
    """Past hunts, newest first, with their results."""
    click.echo(format_hunt_list(list(iter_hunts(cache_dir or default_cache_dir()))), nl=False)
    return 0


@click.command()
@click.argument("hunt_id", required=False)
@CACHE_DIR_OPTION
def log(*, hunt_id: str | None, cache_dir: Path | None) -> int:
    """A hunt (default: the newest) as `git bisect log`; `git bisect replay` accepts it."""
    click.echo(git_bisect_log(find_hunt(cache_dir or default_cache_dir(), hunt_id)), nl=False)
    return 0


@click.command()
@declared(COMPARE_OPTIONS)
@JSON_OPTION
@MARKDOWN_OPTION
def compare(*, json_path: Path | None, markdown_path: Path | None, **params: Any) -> int:
    """Does revision B show a known finalization bug that A does not? (exit 7 if so)"""
    check_writable(json_path, markdown_path)
    values = resolve(COMPARE_OPTIONS, params)
    for required in ("a", "b", "repo"):
        if values[required] is None:
            raise UsageError(f"missing {required.upper() if len(required) == 1 else '--repo'}")
    options = CompareOptions(**values)
    result = run_compare(options, lambda text: click.echo(f"[compare] {text}", err=True))
    click.echo(format_compare(result), nl=False)
    if json_path is not None:
        write_json(json_path, result.to_json())
    if markdown_path is not None:
        command = options.command(result.a.sha, result.b.sha)
        markdown_path.write_text(compare_markdown(result, machine_facts(), command))
    return ExitCode.REGRESSED if result.regressed else ExitCode.OK


@click.command()
@CACHE_DIR_OPTION
def doctor(*, cache_dir: Path | None) -> int:
    """Can this machine build CPython and bisect it? What to install if not."""
    checks = diagnose(cache_dir or default_cache_dir())
    click.echo(format_checks(checks), nl=False)
    failed = any(check.status is Status.FAIL for check in checks)
    return ExitCode.CANNOT_BUILD if failed else ExitCode.OK


COMMANDS = [cache, recipes, runs, log, compare, doctor]
