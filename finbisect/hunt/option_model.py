"""How an option is declared once (nox's `_option_set` idea, without argparse).

An `Option` says everything about one command-line option: its flags and
help, how its text becomes a value (`parse`, which rejects bad values with a
one-line message) and back (`show`), its default, and whether it changes a
hunt's answer (`in_key`). The CLI builds its parser from these declarations,
the option dataclasses name their fields after them, and the hunt key and the
"run this again" line are computed from them: nothing is listed twice.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from finbisect.build.cache import parse_size

__all__ = [
    "Kind",
    "Option",
    "option_values",
    "parse_choice",
    "parse_float",
    "parse_int",
    "parse_path",
    "parse_regex",
    "parse_size_text",
    "show_float",
    "show_size",
    "to_argv",
]


class Kind(enum.Enum):
    VALUE = "value"  # --timeout 60
    FLAG = "flag"  # --first-parent: a bool field, given = not its default
    MULTIPLE = "multiple"  # --configure-flag X --configure-flag Y: a tuple field
    ARGUMENT = "argument"  # the positional REPRO


@dataclass(frozen=True, kw_only=True)
class Option:
    name: str  # the field of the options dataclass, and the CLI's parameter name
    flags: tuple[str, ...]  # ("-j", "--jobs"); the last one is used to show the value
    help: str
    kind: Kind = Kind.VALUE
    parse: Callable[[str], Any] = str  # text -> value; ValueError(message) when bad
    show: Callable[[Any], str] = str  # value -> text that `parse` turns back into the value
    default: Any = None  # a value, or a callable giving it (e.g. the number of CPUs)
    show_default: str | None = None  # how --help describes a computed default
    metavar: str | None = None
    in_key: bool = True  # changes the answer: part of the key that resumes a hunt
    choices: tuple[str, ...] = ()  # for --help and shell completion; parse still decides

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def argv(self, value: Any) -> list[str]:
        """The command-line words that give `value` (none when it is the default)."""
        if self.kind is Kind.ARGUMENT:
            return [self.show(value)]
        if value == self.default_value():
            return []
        flag = self.flags[-1]
        if self.kind is Kind.FLAG:
            return [flag]
        if self.kind is Kind.MULTIPLE:
            return [word for item in value for word in (flag, self.show(item))]
        return [flag, self.show(value)]


def option_values(options: object, declared: Iterable[Option]) -> dict[str, Any]:
    """The declared options' values held by a dataclass instance (fields named after them)."""
    names = {f.name for f in fields(options)}  # type: ignore[arg-type]
    return {o.name: getattr(options, o.name) for o in declared if o.name in names}


def to_argv(prefix: Sequence[str], options: object, declared: Sequence[Option]) -> list[str]:
    """`prefix` followed by the words that give every declared option its value."""
    values = option_values(options, declared)
    words = list(prefix)
    for option in declared:
        if option.name in values and values[option.name] is not None:
            words += option.argv(values[option.name])
    return words


# -- parsers: text -> value, ValueError with the reason ---------------------------------
def parse_float(
    *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> Callable[[str], float]:
    """A finite number within bounds (nan and inf are refused: they disable timeouts)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        if low is not None and (value < low or (low_open and value == low)):
            raise ValueError(f"{text} is not {'above' if low_open else 'at least'} {low:g}")
        if high is not None and value > high:
            raise ValueError(f"{text} is above {high:g}")
        return value

    return parse


def parse_int(*, low: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < low:
            raise ValueError(f"{value} is below {low}")
        return value

    return parse


def parse_choice(choices: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(choices)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def parse_regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a valid regex: {exc}") from None
    return text


def parse_path(text: str) -> Path:
    if not text:
        raise ValueError("an empty path")
    return Path(text).expanduser().absolute()


def parse_size_text(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a size like 20G or 500M") from None


def show_size(size: int) -> str:
    """Bytes as `parse_size_text` reads them back exactly."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def show_float(value: float) -> str:
    return repr(value) if value != int(value) else f"{value:g}"
