"""`finbisect run` and `finbisect demo`: parse, hunt, report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from finbisect.cli.params import (
    JSON_OPTION,
    MARKDOWN_OPTION,
    check_writable,
    declared,
    given_on_command_line,
    resolve,
)
from finbisect.errors import ExitCode, UsageError
from finbisect.hunt.options import RUN_OPTIONS, HuntOptions
from finbisect.hunt.session import run_hunt
from finbisect.output.markdown import result_markdown
from finbisect.output.progress import make_progress
from finbisect.output.terminal import print_report, write_json
from finbisect.recipes.catalog import Recipe, find_recipe
from finbisect.runs.machine import machine_facts
from finbisect.testing.demo import demo_options, demo_workspace

__all__ = ["demo", "hunt_options", "parse_run_line", "run"]


@click.command()
@click.option("--recipe", "recipe_ref", help="A bundled recipe's id, or a recipe TOML file.")
@click.option(
    "--hunt",
    "hunt_number",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Which of the recipe's suggested hunts.",
)
@declared(RUN_OPTIONS)
@JSON_OPTION
@MARKDOWN_OPTION
def run(
    *,
    recipe_ref: str | None,
    hunt_number: int,
    json_path: Path | None,
    markdown_path: Path | None,
    **params: Any,
) -> int:
    """Bisect --repo between --good and --bad for the commit that changed REPRO's fate.

    With --recipe, the repro, symptom, match, timeout, flavour and ends come from
    the recipe; options given on the command line override it.
    """
    recipe = find_recipe(recipe_ref) if recipe_ref is not None else None
    options = hunt_options(params, recipe=recipe, hunt_number=hunt_number)
    return _run_and_report(options, json_path, markdown_path)


def hunt_options(
    params: Mapping[str, Any], *, recipe: Recipe | None = None, hunt_number: int = 1
) -> HuntOptions:
    """HuntOptions from parsed parameters: given values, else the recipe's, else defaults."""
    values = resolve(RUN_OPTIONS, params)
    if recipe is not None:
        if params.get("repro") is not None:
            raise UsageError("give a REPRO script or --recipe, not both")
        given = given_on_command_line(RUN_OPTIONS, params)
        suggested = _recipe_values(recipe, hunt_number)
        if values["build_cmd"] is not None:  # the user's own build: no CPython flavour
            suggested.pop("flavour")
        else:
            values["configure_flags"] = (*recipe.build_flags, *values["configure_flags"])
        values |= {name: value for name, value in suggested.items() if name not in given}
    if values["repro"] is None:
        raise UsageError("missing REPRO: give a repro script or --recipe")
    if values["repo"] is None:
        raise UsageError("--repo is required")
    if values["good"] is None or values["bad"] is None:
        raise UsageError("--good and --bad are required (or a --recipe that suggests them)")
    if not values["repro"].is_file():
        raise UsageError(f"repro script not found: {values['repro']}")
    return HuntOptions(**values)


def _recipe_values(recipe: Recipe, number: int) -> dict[str, Any]:
    """What the recipe says for the options it knows, and the ends of its hunt `number`."""
    values: dict[str, Any] = {
        "repro": recipe.repro,
        "symptom": ",".join(sorted(kind.value for kind in recipe.symptom)),
        "timeout": recipe.timeout,
        "flavour": recipe.flavour,
    }
    if recipe.match is not None:
        values["match"] = recipe.match
    if recipe.hunts:
        if number > len(recipe.hunts):
            raise UsageError(
                f"--hunt {number}: recipe {recipe.id} suggests {len(recipe.hunts)} hunts"
            )
        values |= {"good": recipe.hunts[number - 1].good, "bad": recipe.hunts[number - 1].bad}
    return values


def _run_and_report(
    options: HuntOptions, json_path: Path | None, markdown_path: Path | None
) -> int:
    check_writable(json_path, markdown_path)
    progress = make_progress()
    try:
        result = run_hunt(options, progress)
    finally:
        progress.close()
    print_report(result)
    try:
        if json_path is not None:
            write_json(json_path, result.to_json())
        if markdown_path is not None:
            markdown_path.write_text(result_markdown(result, machine_facts()))
    except OSError as exc:  # checked before the hunt, yet gone (a full disk, say)
        raise UsageError(
            f"cannot write {exc.filename or 'the result'}: {exc.strerror}; the result is "
            "printed above"
        ) from None
    return ExitCode.OK if result.culprit is not None else ExitCode.INCONCLUSIVE


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to generate the demo repository (default: a temporary directory).",
)
@JSON_OPTION
@MARKDOWN_OPTION
@click.option("--flaky", is_flag=True, help="The crash shows in about 30% of runs.")
def demo(
    *, directory: Path | None, json_path: Path | None, markdown_path: Path | None, flaky: bool
) -> int:
    """Bisect a small generated repository ("minipy") whose history breaks the GIL at exit."""
    with demo_workspace(directory) as where:
        options = demo_options(where, flaky=flaky)
        click.echo(
            f"finbisect demo: generated {options.repo} ({options.good[:10]}..{options.bad[:10]})",
            err=True,
        )
        code = _run_and_report(options, json_path, markdown_path)
    if directory is None:  # the reproduce line above names files that are gone now
        click.echo(
            f"finbisect demo: removed {where}; `finbisect demo --dir DIR` keeps the "
            "repository, repro and cache to rerun the hunt",
            err=True,
        )
    return code


def parse_run_line(words: Sequence[str]) -> HuntOptions:
    """The HuntOptions a `finbisect run ...` line gives (for tests of the reproduce line)."""
    if list(words[:2]) != ["finbisect", "run"]:
        raise UsageError("not a `finbisect run` line")
    with run.make_context("run", list(words[2:])) as ctx:
        params = {k: v for k, v in ctx.params.items() if k in {o.name for o in RUN_OPTIONS}}
        return hunt_options(params)
