"""Every refusal has its own documented exit code."""

from __future__ import annotations

import re
from pathlib import Path

from finbisect import errors


def _subclasses() -> list[type[errors.FinbisectError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, errors.FinbisectError)
        and obj is not errors.FinbisectError
    ]


def test_each_error_has_its_own_exit_code() -> None:
    codes = [cls.exit_code for cls in _subclasses()]
    assert len(codes) == len(set(codes))
    assert errors.ExitCode.OK not in codes


def test_every_error_is_exported() -> None:
    assert {cls.__name__ for cls in _subclasses()} <= set(errors.__all__)


def test_the_readme_documents_every_exit_code() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = re.search(r"## Exit codes\n(.*?)\n\n", readme, re.S)
    assert table is not None
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table.group(1), re.M)}
    assert documented == {int(code) for code in errors.ExitCode}
