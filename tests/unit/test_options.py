"""The option declarations: parse -> HuntOptions -> "run again" line -> parse is the identity,
and the hunt key changes with exactly the options that change an answer."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from finbisect.cli.run import parse_run_line
from finbisect.errors import UsageError
from finbisect.hunt.option_model import Kind
from finbisect.hunt.options import RUN_OPTIONS, HuntOptions, hunt_key, reproduce_command

GOOD, BAD = "a" * 40, "b" * 40

# A value other than the default for every option of `finbisect run`, as typed.
CRASH_HUNT = {
    "build_cmd": "make -j3 python",
    "interpreter": "bin/python3",
    "jobs": "3",
    "build_timeout": "120.5",
    "symptom": "error,crash",
    "match": r"Fatal Python error: .*gil",
    "timeout": "7.5",
    "runs": "3",
    "confidence": "0.99",
    "max_runs": "500",
    "max_runs_per_revision": "50",
    "parallel_runs": "2",
    "first_parent": True,
    "verify": False,
    "evidence": False,
    "ccache": False,
    "build_ahead": False,
    "cache_size": "5G",
    "dask_scheduler": "tls://10.0.0.5:8786",
}
CPYTHON_BUILD = {
    "flavour": "asan",
    "configure_flags": ["--with-lto", "--enable-shared"],
    "workarounds": ["2.7..3.3:CFLAGS=+-O1", "LDFLAGS=+-L/opt/lib"],
}
TIMING_HUNT = {"symptom": "slow", "threshold_percent": "12.5", "affinity": "0-1"}
NOISY_HUNT = {"model": "two-sided", "confidence": "0.99"}
DECLARED = {option.name: option for option in RUN_OPTIONS}


def _argv(tmp_path: Path, values: dict[str, object]) -> list[str]:
    repro = tmp_path / "repro.py"
    repro.write_text("print('hello')\n")
    words = ["finbisect", "run", str(repro), "--repo", str(tmp_path), "--good", GOOD]
    words += ["--bad", BAD, "--cache-dir", str(tmp_path / "cache")]
    for name, value in values.items():
        flag = DECLARED[name].flags[-1]
        if value is True or value is False:
            words.append(flag)
        elif isinstance(value, list):
            words += [w for item in value for w in (flag, item)]
        else:
            words += [flag, str(value)]
    return words


def test_every_option_has_a_sample() -> None:
    sampled = {*CRASH_HUNT, *CPYTHON_BUILD, *TIMING_HUNT, *NOISY_HUNT}
    positional = {"repro", "repo", "good", "bad", "cache_dir"}
    assert sampled | positional == set(DECLARED)


def test_the_dataclass_and_the_declarations_agree() -> None:
    fields = {f.name: f for f in dataclasses.fields(HuntOptions)}
    assert list(fields) == list(DECLARED)
    for name, option in DECLARED.items():
        default = fields[name].default
        if default is not dataclasses.MISSING and not callable(option.default):
            assert default == option.default, name


@pytest.mark.parametrize(
    "values",
    [{}, CRASH_HUNT, {**CRASH_HUNT, "build_cmd": None, **CPYTHON_BUILD}, TIMING_HUNT, NOISY_HUNT],
    ids=["defaults", "crash", "cpython-build", "timing", "noisy"],
)
def test_the_reproduce_line_parses_back_to_the_same_hunt(
    tmp_path: Path, values: dict[str, object]
) -> None:
    given = {k: v for k, v in values.items() if v is not None}
    options = parse_run_line(_argv(tmp_path, given))
    line = reproduce_command(options, GOOD, BAD)
    again = parse_run_line(shlex.split(line))
    assert again == options
    assert hunt_key(again, tmp_path, GOOD, BAD) == hunt_key(options, tmp_path, GOOD, BAD)
    for name in given:  # each option given is spelled out in the line
        assert DECLARED[name].flags[-1] in shlex.split(line), name


def _changed(options: HuntOptions, name: str, text: object) -> HuntOptions:
    option = DECLARED[name]
    value: Any
    if option.kind is Kind.FLAG:
        value = not option.default
    elif option.kind is Kind.MULTIPLE:
        assert isinstance(text, list)
        value = tuple(map(option.parse, text))
    else:
        value = option.parse(str(text))
    changes: dict[str, Any] = {name: value}
    return dataclasses.replace(options, **changes)


@pytest.mark.parametrize("name", sorted({*CRASH_HUNT, *CPYTHON_BUILD, *NOISY_HUNT} - {"build_cmd"}))
def test_the_key_changes_with_exactly_the_options_that_change_an_answer(
    tmp_path: Path, name: str
) -> None:
    base = parse_run_line(_argv(tmp_path, {}))
    value = {**CRASH_HUNT, **CPYTHON_BUILD, **NOISY_HUNT}[name]
    changed = _changed(base, name, value)
    before = hunt_key(base, tmp_path, GOOD, BAD)
    after = hunt_key(changed, tmp_path, GOOD, BAD)
    assert (before != after) == DECLARED[name].in_key, name


def test_the_key_changes_with_the_build_command_the_ends_and_the_repro(tmp_path: Path) -> None:
    base = parse_run_line(_argv(tmp_path, {}))
    key = hunt_key(base, tmp_path, GOOD, BAD)
    assert hunt_key(_changed(base, "build_cmd", "make"), tmp_path, GOOD, BAD) != key
    assert hunt_key(base, tmp_path, BAD, GOOD) != key
    assert hunt_key(base, tmp_path / "other", GOOD, BAD) != key
    base.repro.write_text("print('changed')\n")
    assert hunt_key(base, tmp_path, GOOD, BAD) != key


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"timeout": "nan"}, "not a finite number"),
        ({"build_timeout": "inf"}, "not a finite number"),
        ({"confidence": "nan"}, "not a finite number"),
        ({"timeout": "0"}, "not above 0"),
        ({"symptom": "slow", "match": "x"}, "no meaning with --symptom slow"),
        ({"threshold_percent": "5"}, "belong to timing hunts"),
        ({"flavour": "asan", "build_cmd": "make"}, "no meaning with --build-cmd"),
    ],
)
def test_bad_combinations_and_values_are_refused(
    tmp_path: Path, values: dict[str, object], words: str
) -> None:
    with pytest.raises((UsageError, click.BadParameter)) as refused:
        parse_run_line(_argv(tmp_path, values))
    assert words in str(refused.value)
