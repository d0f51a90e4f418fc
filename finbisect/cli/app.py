"""Command line: parse, call the session, report, exit. The only module that exits.

Every refusal is one line on stderr and a documented exit code; click's own
usage errors are folded into that shape too.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from finbisect.build.builder import BuildConfig
from finbisect.build.cpython import Flavour, parse_workaround
from finbisect.cli.commands import COMMANDS
from finbisect.cli.options import (
    CACHE_SIZE_OPTION,
    JSON_OPTION,
    MARKDOWN_OPTION,
    POSITIVE,
    build_options,
    check_writable,
    default_cache_dir,
    given_on_command_line,
    parse_regex,
    parse_run_symptoms,
)
from finbisect.errors import FinbisectError, HuntInterruptedError, InconclusiveError, UsageError
from finbisect.hunt.options import HuntOptions
from finbisect.hunt.session import run_hunt
from finbisect.models import OutcomeKind
from finbisect.output.markdown import result_markdown
from finbisect.output.progress import make_progress
from finbisect.output.terminal import (
    print_report,
    result_to_json,
    write_json,
)
from finbisect.recipes.catalog import Recipe, find_recipe
from finbisect.runs.machine import machine_facts
from finbisect.runs.probe import DEFAULT_SYMPTOMS
from finbisect.testing.demo import demo_options, demo_workspace

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Runs commands with finbisect's error contract instead of click's."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.exceptions.Abort:
            _fail("interrupted", HuntInterruptedError.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message().replace("\n", " "), UsageError.exit_code)
        except FinbisectError as exc:
            _fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; children killed, cache kept", HuntInterruptedError.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"finbisect: error: {message}", err=True)
    sys.exit(code)


def main() -> None:
    cli()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finbisect")
def cli() -> None:
    """Find the CPython commit that introduced or fixed a crash or hang at exit."""


@cli.command()
@click.argument("repro", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--recipe", "recipe_ref", help="A bundled recipe's id, or a recipe TOML file.")
@click.option(
    "--hunt",
    "hunt_number",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Which of the recipe's suggested hunts.",
)
@click.option(
    "--repo",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The CPython git checkout (never modified).",
)
@click.option("--good", help="A revision that does not show the symptom.")
@click.option("--bad", help="A revision that shows the symptom.")
@build_options
@click.option(
    "--flavour",
    type=click.Choice([f.value for f in Flavour]),
    help="CPython build flavour (default pydebug); not with --build-cmd.",
)
@click.option(
    "--configure-flag",
    "configure_flags",
    multiple=True,
    help="Extra flag for CPython's ./configure (repeatable).",
)
@click.option(
    "--workaround",
    "workarounds",
    multiple=True,
    help="Add to the old-toolchain table: [LOW..HIGH:]NAME=VALUE, '+VALUE' appends (repeatable).",
)
@click.option(
    "--symptom",
    "symptoms",
    default=",".join(sorted(k.value for k in DEFAULT_SYMPTOMS)),
    show_default=True,
    callback=parse_run_symptoms,
    help="Run kinds that count as the symptom (crash, hang, error), or slow: a timing hunt.",
)
@click.option(
    "--match",
    callback=parse_regex,
    help="Regex a crash's or error's output must match to count as the symptom.",
)
@click.option(
    "--timeout",
    type=POSITIVE,
    default=60.0,
    show_default=True,
    help="Seconds one run may take before it counts as a hang.",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    help="Fixed runs per revision, any symptom makes it bad (git bisect's search). "
    "Default: the noisy search, which decides how often to run.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(min=0.5, max=0.9999),
    default=0.95,
    show_default=True,
    help="Noisy search: stop when one commit holds this much posterior probability.",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Noisy search: total run budget; spent first -> inconclusive (exit 5).",
)
@click.option(
    "--max-runs-per-revision",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Noisy search: runs at the bad end before concluding it never shows the symptom.",
)
@click.option(
    "--parallel-runs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Repro processes run at once at the same revision.",
)
@click.option(
    "--threshold",
    "threshold_percent",
    type=POSITIVE,
    metavar="PERCENT",
    help="--symptom slow: the slowdown that counts, relative to the good end.",
)
@click.option("--affinity", metavar="CPU_LIST", help="--symptom slow: pin pyperf to these CPUs.")
@click.option("--first-parent", is_flag=True, help="Only follow first parents (mainline merges).")
@click.option("--no-verify", is_flag=True, help="Trust --good and --bad without testing them.")
@JSON_OPTION
@MARKDOWN_OPTION
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=default_cache_dir,
    show_default="$FINBISECT_CACHE_DIR or the user cache",
    help="Where finbisect keeps its clone, builds and logs.",
)
@CACHE_SIZE_OPTION
def run(
    *,
    repro: Path | None,
    recipe_ref: str | None,
    hunt_number: int,
    repo: Path,
    good: str | None,
    bad: str | None,
    build_cmd: str | None,
    interpreter: str,
    jobs: int,
    build_timeout: float,
    flavour: str | None,
    configure_flags: tuple[str, ...],
    workarounds: tuple[str, ...],
    symptoms: frozenset[OutcomeKind] | None,
    match: re.Pattern[str] | None,
    timeout: float,
    threshold_percent: float | None,
    affinity: str | None,
    runs: int | None,
    confidence: float,
    max_runs: int,
    max_runs_per_revision: int,
    parallel_runs: int,
    first_parent: bool,
    no_verify: bool,
    json_path: Path | None,
    markdown_path: Path | None,
    cache_dir: Path,
    cache_size: int,
) -> int:  # fmt: skip
    """Bisect REPO between --good and --bad for the commit that changed REPRO's fate.

    With --recipe, the repro, symptom, match, timeout, flavour and ends come from
    the recipe; options given on the command line override it.
    """
    if recipe_ref is not None:
        if repro is not None:
            raise UsageError("give a REPRO script or --recipe, not both")
        recipe = find_recipe(recipe_ref)
        given = given_on_command_line()
        repro = recipe.repro
        good, bad = _recipe_ends(recipe, hunt_number, good, bad)
        symptoms = symptoms if "symptoms" in given else frozenset(recipe.symptom)
        if "match" not in given and recipe.match is not None:
            match = re.compile(recipe.match)
        timeout = timeout if "timeout" in given else recipe.timeout
        if build_cmd is None:
            flavour = flavour or recipe.flavour
            configure_flags = (*recipe.build_flags, *configure_flags)
    if repro is None:
        raise UsageError("missing REPRO: give a repro script or --recipe")
    if good is None or bad is None:
        raise UsageError("--good and --bad are required (or a --recipe that suggests them)")
    if not repro.is_file():
        raise UsageError(f"repro script not found: {repro}")
    slow = symptoms is None
    if not slow and (threshold_percent is not None or affinity is not None):
        raise UsageError("--threshold and --affinity belong to timing hunts (--symptom slow)")
    if slow and (match is not None or no_verify or runs is not None):
        raise UsageError("--match, --no-verify and --runs have no meaning with --symptom slow")
    if build_cmd is not None and not build_cmd.strip():
        raise UsageError("--build-cmd is empty")
    if build_cmd is not None and (flavour or configure_flags or workarounds):
        raise UsageError(
            "--flavour, --configure-flag and --workaround configure CPython's own build; "
            "they have no meaning with --build-cmd"
        )
    build = BuildConfig(
        command=build_cmd,
        interpreter=interpreter,
        jobs=jobs,
        timeout=build_timeout,
        flavour=Flavour(flavour or Flavour.PYDEBUG),
        configure_flags=configure_flags,
        workarounds=tuple(parse_workaround(spec) for spec in workarounds),
    ).for_repros([repro])
    options = HuntOptions(
        repro=repro.resolve(),
        repo=repo,
        good=good,
        bad=bad,
        build=build,
        symptoms=symptoms or DEFAULT_SYMPTOMS,
        match=match,
        timeout=timeout,
        runs=runs,
        slow=slow,
        threshold_percent=threshold_percent,
        affinity=affinity,
        confidence=confidence,
        max_runs=max_runs,
        max_runs_per_revision=max_runs_per_revision,
        parallel_runs=parallel_runs,
        first_parent=first_parent,
        verify=not no_verify,
        cache_dir=cache_dir.resolve(),
        cache_size=cache_size,
    )
    return _run_and_report(options, json_path, markdown_path)


def _recipe_ends(
    recipe: Recipe, number: int, good: str | None, bad: str | None
) -> tuple[str | None, str | None]:
    """--good/--bad as given, else those of the recipe's suggested hunt `number`."""
    if not recipe.hunts:
        return good, bad
    if number > len(recipe.hunts):
        raise UsageError(f"--hunt {number}: recipe {recipe.id} suggests {len(recipe.hunts)} hunts")
    suggested = recipe.hunts[number - 1]
    return good or suggested.good, bad or suggested.bad


def _run_and_report(
    options: HuntOptions, json_path: Path | None, markdown_path: Path | None
) -> int:
    check_writable(json_path, markdown_path)
    # A polite kill gets the same clean-up as Ctrl-C: children killed, lock released.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    progress = make_progress()
    try:
        result = run_hunt(options, progress)
    finally:
        progress.close()
    print_report(result)
    if json_path is not None:
        write_json(json_path, result_to_json(result))
    if markdown_path is not None:
        markdown_path.write_text(result_markdown(result, machine_facts()))
    return 0 if result.culprit is not None else InconclusiveError.exit_code


@cli.command()
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


for _command in COMMANDS:
    cli.add_command(_command)
