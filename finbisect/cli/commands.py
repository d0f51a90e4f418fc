"""The smaller commands: cache, recipes, runs, log (and compare).

Registered on the main group by cli.py; like cli.py they only parse, call
and print what report.py formats.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import signal
import time
from pathlib import Path

import click

from finbisect.build.builder import BuildConfig
from finbisect.build.cache import BuildCache, format_size
from finbisect.build.cpython import Flavour
from finbisect.cli.options import (
    CACHE_DIR_OPTION,
    CACHE_SIZE_OPTION,
    JSON_OPTION,
    MARKDOWN_OPTION,
    POSITIVE,
    build_options,
    check_writable,
    parse_optional_symptoms,
    parse_regex,
    parse_size_option,
)
from finbisect.errors import RegressionFoundError, UsageError
from finbisect.hunt.compare import CompareItem, CompareOptions, item_from_recipe, run_compare
from finbisect.hunt.state import find_hunt, git_bisect_log, iter_hunts
from finbisect.models import OutcomeKind
from finbisect.output.markdown import compare_markdown
from finbisect.output.terminal import (
    compare_to_json,
    format_compare,
    format_hunt_list,
    format_recipe,
    format_recipe_list,
    write_json,
)
from finbisect.recipes.catalog import bundled_recipes_dir, find_recipe, load_all, recipe_to_dict
from finbisect.runs.machine import machine_facts
from finbisect.runs.probe import DEFAULT_SYMPTOMS

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


@click.command()
@click.argument("a")
@click.argument("b")
@click.option("--repo", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Compare with every recipe in this directory (default: the bundled ones).",
)
@click.option("--only", help="Comma-separated recipe ids to compare with.")
@click.option(
    "--repro",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Compare with this one script instead of recipes.",
)
@build_options
@click.option("--flavour", type=click.Choice([f.value for f in Flavour]), help="With --repro.")
@click.option("--symptom", "symptoms", callback=parse_optional_symptoms, help="Overrides recipes'.")
@click.option("--match", callback=parse_regex, help="Overrides recipes'.")
@click.option("--timeout", type=POSITIVE, help="Seconds per run (overrides recipes'; default 60).")
@click.option("--confidence", type=click.FloatRange(min=0.5, max=0.9999), default=0.95)
@click.option(
    "--min-rate",
    type=click.FloatRange(min=0.001, max=1.0),
    default=0.1,
    show_default=True,
    help="The rarest symptom rate a clean side must rule out.",
)
@JSON_OPTION
@MARKDOWN_OPTION
@CACHE_DIR_OPTION
@CACHE_SIZE_OPTION
def compare(
    *,
    a: str,
    b: str,
    repo: Path,
    recipes_dir: Path | None,
    only: str | None,
    repro: Path | None,
    build_cmd: str | None,
    interpreter: str,
    jobs: int,
    build_timeout: float,
    flavour: str | None,
    symptoms: frozenset[OutcomeKind] | None,
    match: re.Pattern[str] | None,
    timeout: float | None,
    confidence: float,
    min_rate: float,
    json_path: Path | None,
    markdown_path: Path | None,
    cache_dir: Path,
    cache_size: int,
) -> int:
    """Does revision B show a known finalization bug that A does not? (exit 7 if so)"""
    check_writable(json_path, markdown_path)
    if build_cmd is not None and flavour is not None:
        raise UsageError("--flavour configures CPython's own build; not with --build-cmd")
    items = _compare_items(
        recipes_dir=recipes_dir,
        only=only,
        repro=repro,
        flavour=Flavour(flavour or Flavour.PYDEBUG),
        symptoms=symptoms,
        match=match,
        timeout=timeout,
    )
    options = CompareOptions(
        repo=repo,
        a=a,
        b=b,
        items=items,
        build=BuildConfig(
            command=build_cmd, interpreter=interpreter, jobs=jobs, timeout=build_timeout
        ),
        confidence=confidence,
        min_rate=min_rate,
        cache_dir=cache_dir.resolve(),
        cache_size=cache_size,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = run_compare(options, lambda text: click.echo(f"[compare] {text}", err=True))
    click.echo(format_compare(result), nl=False)
    if json_path is not None:
        write_json(json_path, compare_to_json(result))
    if markdown_path is not None:
        command = shlex.join(
            ["finbisect", "compare", result.a.sha, result.b.sha, "--repo", str(repo.resolve())]
            + (["--repro", str(repro.resolve())] if repro else [])
            + (["--only", only] if only else [])
            + (["--build-cmd", build_cmd] if build_cmd else [])
        )
        markdown_path.write_text(compare_markdown(result, machine_facts(), command))
    return RegressionFoundError.exit_code if result.regressed else 0


def _compare_items(
    *,
    recipes_dir: Path | None,
    only: str | None,
    repro: Path | None,
    flavour: Flavour,
    symptoms: frozenset[OutcomeKind] | None,
    match: re.Pattern[str] | None,
    timeout: float | None,
) -> tuple[CompareItem, ...]:
    """The ad-hoc --repro, or the selected recipes with the command line's overrides."""
    if repro is not None:
        if recipes_dir is not None or only is not None:
            raise UsageError("--repro compares one script; not with --recipes or --only")
        return (
            CompareItem(
                name=str(repro),
                repro=repro.resolve(),
                symptoms=symptoms or DEFAULT_SYMPTOMS,
                match=match,
                timeout=timeout or 60.0,
                flavour=flavour,
            ),
        )
    available = load_all(recipes_dir or bundled_recipes_dir())
    if only is not None:
        wanted = [part.strip() for part in only.split(",") if part.strip()]
        known = {r.id for r in available}
        if unknown := [w for w in wanted if w not in known]:
            raise UsageError(f"--only: no recipe {', '.join(unknown)} (see `finbisect recipes`)")
        available = [r for r in available if r.id in wanted]
    items = []
    for recipe in available:
        item = item_from_recipe(recipe)
        items.append(
            dataclasses.replace(
                item,
                symptoms=symptoms or item.symptoms,
                match=match or item.match,
                timeout=timeout or item.timeout,
            )
        )
    return tuple(items)


COMMANDS = [cache, recipes, runs, log, compare]
