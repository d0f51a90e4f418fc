"""Every refusal has its own documented exit code."""

from __future__ import annotations

from finbisect import errors


def _subclasses() -> list[type[errors.FinbisectError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, errors.FinbisectError)
        and obj is not errors.FinbisectError
    ]


def test_exit_codes_are_unique_and_documented() -> None:
    codes = {cls.__name__: cls.exit_code for cls in _subclasses()}
    assert sorted(codes.values()) == [2, 3, 4, 5, 6, 7, 130]


def test_every_error_is_exported() -> None:
    assert {cls.__name__ for cls in _subclasses()} <= set(errors.__all__)
