"""The smaller commands: cache, recipes, runs, log (and compare).

Registered on the main group by cli.py; like cli.py they only parse, call
and print what report.py formats.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from finbisect.buildcache import BuildCache, format_size
from finbisect.cli_options import CACHE_DIR_OPTION, parse_size_option
from finbisect.recipes import bundled_recipes_dir, find_recipe, load_all, recipe_to_dict
from finbisect.report import format_hunt_list, format_recipe, format_recipe_list
from finbisect.state import find_hunt, git_bisect_log, iter_hunts

__all__ = ["COMMANDS"]


@click.group()
def cache() -> None:
    """List, prune or clear cached builds."""


@cache.command("list")
@CACHE_DIR_OPTION
def cache_list(*, cache_dir: Path) -> int:
    """Cached builds, most recently used first, with their sizes."""
    builds = BuildCache(cache_dir / "builds").entries()
    for build in builds:
        state = "ok" if build.ok else f"failed: {build.reason}"
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(build.last_used))
        click.echo(
            f"{build.sha[:12]}  {format_size(build.size):>10}  {used}  {build.description}  {state}"
        )
    click.echo(f"{len(builds)} builds, {format_size(sum(b.size for b in builds))} in {cache_dir}")
    return 0


@cache.command("prune")
@CACHE_DIR_OPTION
@click.option(
    "--max-size",
    default="20G",
    show_default=True,
    callback=lambda _c, _p, v: parse_size_option(v),
    help="Evict least recently used builds until the cache is this small.",
)
def cache_prune(*, cache_dir: Path, max_size: int) -> int:
    """Evict least recently used builds beyond --max-size."""
    removed = BuildCache(cache_dir / "builds").prune(max_size)
    click.echo(f"removed {len(removed)} builds, {format_size(sum(b.size for b in removed))}")
    return 0


@cache.command("clear")
@CACHE_DIR_OPTION
def cache_clear(*, cache_dir: Path) -> int:
    """Remove every cached build (clones and logs stay)."""
    removed = BuildCache(cache_dir / "builds").clear()
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
def runs(*, cache_dir: Path) -> int:
    """Past hunts, newest first, with their results."""
    click.echo(format_hunt_list(list(iter_hunts(cache_dir))), nl=False)
    return 0


@click.command()
@click.argument("hunt_id", required=False)
@CACHE_DIR_OPTION
def log(*, hunt_id: str | None, cache_dir: Path) -> int:
    """A hunt (default: the newest) as `git bisect log`; `git bisect replay` accepts it."""
    click.echo(git_bisect_log(find_hunt(cache_dir, hunt_id)), nl=False)
    return 0


COMMANDS = [cache, recipes, runs, log]
