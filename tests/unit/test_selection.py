"""Which files of a build tree the build cache keeps (objects.Selection)."""

from __future__ import annotations

import pytest

from finbisect.build.config import BuildConfig
from finbisect.build.objects import EVERYTHING, Selection

_CPYTHON = BuildConfig(command=None, interpreter="python", jobs=1, timeout=1).stored_files
_USERS = BuildConfig(command="make", interpreter="bin/interp", jobs=1, timeout=1).stored_files


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("python", True),
        ("pybuilddir.txt", True),
        ("Lib/os.py", True),
        ("Lib/test/support/__init__.py", True),
        ("Lib/os.pyc", False),  # 2.7's bytecode: rewritten by the runs themselves
        ("build/lib.linux-x86_64-3.9-pydebug/_sysconfigdata_d_x86_64-linux-gnu.py", True),
        ("build/lib.linux-x86_64-2.7/_socket.so", True),
        ("build/temp.linux-x86_64-2.7/Modules/_socket.o", False),
        ("Modules/Setup", True),
        ("Modules/Setup.local", True),
        ("Modules/Setup.dist", True),
        ("Modules/Setup.stdlib", True),
        ("Modules/_io/_iomodule.c", False),
        ("Modules/makesetup", False),
        ("Tools/gdb/libpython.py", True),
        ("Tools/scripts/summarize_stats.py", False),
        ("Makefile", False),  # sysconfig reads _sysconfigdata, on every era
        ("pyconfig.h", False),
        ("Doc/library/os.rst", False),
        ("Objects/object.o", False),
        ("libpython3.9d.a", False),
        ("libpython3.9d.so.1.0", True),
        ("python-gdb.py", False),
        ("config.log", False),
    ],
)
def test_cpython_keeps_what_running_needs(path: str, kept: bool) -> None:
    assert _CPYTHON.matcher()(path) == kept


@pytest.mark.parametrize(
    ("path", "kept"),
    [("bin/interp", True), ("src/main.c", True), ("docs/x.txt", True), ("src/main.o", False)],
)
def test_a_users_build_keeps_all_but_objects_and_archives(path: str, kept: bool) -> None:
    assert _USERS == EVERYTHING
    assert _USERS.matcher()(path) == kept


@pytest.mark.parametrize(
    ("directory", "walked"),
    [
        ("Lib", True),
        ("Lib/json", True),
        ("build", True),
        ("build/lib.linux-x86_64-3.13", True),
        ("build/temp.linux-x86_64-3.9", False),
        ("Modules", True),  # Modules/Setup* are files in it
        ("Modules/_io", False),
        ("Tools", True),
        ("Tools/gdb", True),
        ("Tools/scripts", False),
        ("Doc", False),
        ("Objects", False),
    ],
)
def test_the_store_walks_only_where_kept_files_can_be(directory: str, walked: bool) -> None:
    assert _CPYTHON.may_hold(directory) == walked
    # Whatever it walks past holds nothing it keeps.
    if not walked:
        assert not _CPYTHON.matcher()(f"{directory}/x.py")


def test_everything_is_walked_for_a_users_build() -> None:
    assert all(EVERYTHING.may_hold(d) for d in ("src", "a/b/c", ".hidden"))
    assert Selection(include=("x",)).may_hold("y") is False
