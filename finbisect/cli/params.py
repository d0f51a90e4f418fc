"""click parameters made from the declared options (finbisect.hunt.option_model).

click parses and prints --help; the declarations decide what a value means,
its default and how it is checked, so a value is parsed the same way here, in
a recipe, and when a saved "run again" line is read back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from finbisect.errors import UsageError
from finbisect.hunt.option_model import Kind, Option

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "JSON_OPTION",
    "MARKDOWN_OPTION",
    "check_writable",
    "declared",
    "given_on_command_line",
    "resolve",
]


class _Declared(click.ParamType):  # type: ignore[type-arg]
    """A click type that parses with the option's own parser."""

    def __init__(self, option: Option) -> None:
        self.option = option
        self.name = option.metavar or option.name.upper()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # already parsed (a default)
        try:
            return self.option.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def declared(options: Sequence[Option]) -> Callable[[F], F]:
    """Decorate a command with one click parameter per declared option.

    Defaults are not given to click: `resolve` fills them from the declarations,
    so "given on the command line" and "the default" stay distinguishable.
    """

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = _parameter(option)(command)
        return command

    return decorate


def _parameter(option: Option) -> Callable[[F], F]:
    default_text = option.show_default or (
        None if option.default is None or callable(option.default) else str(option.default)
    )
    if option.kind is Kind.ARGUMENT:
        return click.argument(option.name, type=_Declared(option), required=False)
    if option.kind is Kind.FLAG:
        return click.option(*option.flags, option.name, is_flag=True, default=None,
                            help=option.help)  # fmt: skip
    if option.kind is Kind.MULTIPLE:
        return click.option(*option.flags, option.name, type=_Declared(option), multiple=True,
                            help=option.help)  # fmt: skip
    return click.option(
        *option.flags,
        option.name,
        type=_Declared(option),
        default=None,
        help=option.help + (f"  [default: {default_text}]" if default_text else ""),
    )


def resolve(options: Sequence[Option], params: Mapping[str, Any]) -> dict[str, Any]:
    """Each option's value: as given, else its declared default (a flag given flips it)."""
    values = {}
    for option in options:
        given = params.get(option.name)
        if option.kind is Kind.FLAG:
            values[option.name] = (not option.default) if given else option.default
        elif option.kind is Kind.MULTIPLE:
            values[option.name] = tuple(given or ())
        else:
            values[option.name] = option.default_value() if given is None else given
    return values


def given_on_command_line(options: Sequence[Option], params: Mapping[str, Any]) -> set[str]:
    """Options the user typed (so a recipe yields to them)."""
    return {o.name for o in options if params.get(o.name) is not None and params[o.name] != ()}


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
    """Refuse an output file that cannot be written before hours of building, not after."""
    for path in paths:
        if path is None:
            continue
        folder = path.resolve().parent
        if not folder.is_dir():
            raise UsageError(f"directory does not exist: {path.parent} (for {path.name})")
        probe = folder / f".{path.name}.finbisect-check"
        try:
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from None
