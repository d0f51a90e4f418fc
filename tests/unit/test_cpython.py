"""CPython build knowledge: versions, flavours, targets, the workaround table."""

from __future__ import annotations

import pytest

from finbisect.build.cpython import (
    Version,
    parse_version,
    parse_workaround,
    plan_build,
    unsupported_reason,
)
from finbisect.build.modules import (
    builtin_modules,
    needs_extension_modules,
    needs_test_modules,
    setup_local,
)
from finbisect.errors import UsageError
from finbisect.models import Flavour

CONFIGURE_313 = "with_pydebug with_ensurepip enable_test_modules with_address_sanitizer " + (
    "with_thread_sanitizer enable_gil"
)
CONFIGURE_27 = "with_pydebug with_address_sanitizer"
MAKEFILE_312 = "all: build_all\nplatform: pybuilddir.txt\nsharedmods: $(SHAREDMODS)\n"
MAKEFILE_27 = "all: build_all\nplatform: $(BUILDPYTHON)\nsharedmods: $(BUILDPYTHON)\n"
# Excerpts of real Setup files: 3.13 builds the core in (and shared modules with the
# Makefile); 2.7.18's Setup.dist offers time & co. as commented-out lines.
SETUP_313 = {
    "Modules/Setup.bootstrap.in": "_collections _collectionsmodule.c\ntime timemodule.c\n",
    "Modules/Setup.stdlib.in": "*@MODULE_BUILDTYPE@*\n@MODULE__HEAPQ_TRUE@_heapq _heapqmodule.c\n",
}
SETUP_27 = {
    "Modules/Setup.dist": (
        "# The modules listed here\n"
        "posix posixmodule.c\t\t# posix (UNIX) system calls\n"
        "_weakref _weakref.c\n"
        "#time timemodule.c # -lm # time operations and variables\n"
        "#operator operator.c\t# operator.add() and similar goodies\n"
        "#_collections _collectionsmodule.c # Container types\n"
        "#_heapq _heapqmodule.c\t\t# Heapq type\n"
        "#cStringIO cStringIO.c\n"
        "*shared*\n"
        "spam spammodule.c\n"
    ),
}


def _patchlevel(major: int, minor: int, micro: int = 0) -> str:
    return (
        f"#define PY_MAJOR_VERSION\t{major}\n#define PY_MINOR_VERSION\t{minor}\n"
        f'#define PY_MICRO_VERSION\t{micro}\n#define PY_VERSION "{major}.{minor}.{micro}"\n'
    )


def test_parse_version() -> None:
    assert parse_version(_patchlevel(3, 13, 5)) == Version(3, 13, 5)
    assert parse_version(_patchlevel(2, 7, 8)) == Version(2, 7, 8) < Version(3, 0)
    assert parse_version("nothing here") is None


@pytest.mark.parametrize(
    ("flavour", "flags"),
    [
        (Flavour.RELEASE, ()),
        (Flavour.PYDEBUG, ("--with-pydebug",)),
        (Flavour.ASAN, ("--with-address-sanitizer", "--without-pymalloc")),
        (Flavour.TSAN, ("--with-thread-sanitizer",)),
        (Flavour.NOGIL, ("--disable-gil",)),
    ],
)
def test_flavour_flags(flavour: Flavour, flags: tuple[str, ...]) -> None:
    plan = plan_build(
        flavour=flavour,
        configure_text=CONFIGURE_313,
        makefile_text=MAKEFILE_312,
        patchlevel_text=_patchlevel(3, 13),
        setup_texts=SETUP_313,
        test_modules=False,
        extension_modules=True,
    )
    assert plan.configure_flags == (*flags, "--without-ensurepip", "--disable-test-modules")
    assert plan.make_targets == ("python", "platform", "sharedmods")
    sanitizer = {Flavour.ASAN: "address", Flavour.TSAN: "thread"}.get(flavour)
    if sanitizer is None:
        assert plan.env == ()
    else:  # some trees (Debian's) drop configure's LDFLAGS; make reads ours
        assert dict(plan.env)["LDFLAGS"] == f"+-fsanitize={sanitizer}"


@pytest.mark.parametrize(
    ("test_modules", "extension_modules", "targets"),
    [
        (False, False, ("python", "platform")),  # built-in modules only
        (False, True, ("python", "platform", "sharedmods")),
        (True, False, ("python", "platform", "sharedmods")),  # _testcapi is a shared module
    ],
)
def test_only_the_modules_the_repro_needs_are_built(
    test_modules: bool, extension_modules: bool, targets: tuple[str, ...]
) -> None:
    plan = plan_build(
        flavour=Flavour.PYDEBUG,
        configure_text=CONFIGURE_313,
        makefile_text=MAKEFILE_312,
        patchlevel_text=_patchlevel(3, 13),
        setup_texts=SETUP_313,
        test_modules=test_modules,
        extension_modules=extension_modules,
    )
    assert plan.make_targets == targets
    assert plan.setup_local == ""  # 3.13 builds every core module in


@pytest.mark.parametrize(
    ("flavour", "configure", "supported"),
    [
        (Flavour.TSAN, CONFIGURE_27, False),
        (Flavour.NOGIL, CONFIGURE_27, False),
        (Flavour.ASAN, CONFIGURE_27, True),
        (Flavour.RELEASE, "", True),
        (Flavour.TSAN, CONFIGURE_313, True),
    ],
)
def test_flavour_support(flavour: Flavour, configure: str, supported: bool) -> None:
    assert (unsupported_reason(flavour, configure) is None) is supported


def test_a_27_tree_builds_its_core_modules_in_and_only_the_interpreter() -> None:
    plan = plan_build(
        flavour=Flavour.PYDEBUG,
        configure_text=CONFIGURE_27,
        makefile_text=MAKEFILE_27,
        patchlevel_text=_patchlevel(2, 7, 18),
        setup_texts=SETUP_27,
        test_modules=False,
        extension_modules=False,
        user_workarounds=[parse_workaround("2.7..2.8:CFLAGS=+-O0"), parse_workaround("X=1")],
        environ={"CFLAGS": "-g"},
    )
    assert plan.make_targets == ("python", "platform")
    assert plan.setup_local.splitlines()[1:] == [
        "time timemodule.c -lm",
        "_collections _collectionsmodule.c",
        "operator operator.c",
        "cStringIO cStringIO.c",
    ]  # _heapq has a pure-Python fallback; posix and _weakref are built in already
    # Workarounds are configure's arguments, never its environment (2.7's setup.py
    # would put them on its link lines); "+" appends to the user's value.
    assert plan.configure_flags[-2:] == ("CFLAGS=-g -O0", "X=1")
    assert plan.env == ()
    assert plan.workarounds == ("user:2.7..2.8:CFLAGS=+-O0", "user:X=1")


def test_a_27_repro_needing_more_builds_everything_with_setup_py() -> None:
    plan = plan_build(
        flavour=Flavour.RELEASE,
        configure_text=CONFIGURE_27,
        makefile_text=MAKEFILE_27,
        patchlevel_text=_patchlevel(2, 7, 18),
        setup_texts=SETUP_27,
        test_modules=False,
        extension_modules=True,
    )
    assert (plan.make_targets, plan.setup_local) == ((), "")


def test_builtin_modules_stop_at_the_shared_marker() -> None:
    assert builtin_modules(SETUP_27) == {"posix", "_weakref"}
    assert builtin_modules(SETUP_313) == {"_collections", "time"}
    assert setup_local(SETUP_313) == ""


def test_workaround_ranges() -> None:
    w = parse_workaround("3.1..3.5:CFLAGS=-g")
    assert (w.low, w.high, w.env) == (Version(3, 1), Version(3, 5), (("CFLAGS", "-g"),))
    assert w.applies(Version(3, 4, 9))
    assert not w.applies(Version(3, 5))
    assert parse_workaround("..3:A=b").applies(Version(2, 7))
    for bad in ("A", "3.x..:A=b", "=b", "1..2:"):
        with pytest.raises(UsageError):
            parse_workaround(bad)


@pytest.mark.parametrize(
    ("text", "needed"),
    [("import _testcapi", True), ("from _testinternalcapi import x", True), ("import os", False)],
)
def test_test_module_detection(text: str, needed: bool) -> None:
    assert needs_test_modules(text) is needed


@pytest.mark.parametrize(
    ("text", "needed"),
    [
        ("import os, sys, threading\nimport time", False),
        ("from concurrent.futures import ThreadPoolExecutor", True),
        ("def f():\n    import socket", True),  # imports anywhere count
        ("import logging.handlers", False),
        ("import subprocess", True),
        ("import os\nos.system(sys.executable + ' -c pass')", True),  # a child's imports
        ("import importlib\nimportlib.import_module('x')", True),
        ("print 'python 2'\nimport thread, time", False),  # Python 2 repros are read too
        ("import threading as t, Queue", True),
        ("import _testcapi", True),
    ],
)
def test_extension_module_detection(text: str, needed: bool) -> None:
    assert needs_extension_modules(text) is needed
