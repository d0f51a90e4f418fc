"""Real CPython builds stored and moved (opt-in): `FINBISECT_CPYTHON_BUILT=tree[:tree...]
pytest -m cpython`, each a CPython tree already built in place (only read).

What the build cache keeps of a CPython build (build/cpython.py, RUNTIME_FILES)
must be enough for the interpreter to run as from its build directory, from
wherever the cache is moved: its own standard library and built modules, no
installed Python's, sysconfig as in the build tree, gdb's libpython.py beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from finbisect.build.cache import BuildCache
from finbisect.build.config import BuildConfig
from finbisect.runs.stacks import find_libpython

pytestmark = pytest.mark.cpython

_BUILT = [Path(p) for p in os.environ.get("FINBISECT_CPYTHON_BUILT", "").split(os.pathsep) if p]
# Paths printed relative to the interpreter's directory, so two trees compare equal.
_PROBE = """\
import os, sys, sysconfig, threading, site
here = os.path.dirname(os.path.realpath(sys.executable))
def rel(p): return p.replace(here, '<tree>')
def source(p): return rel(p[:-1] if p.endswith('.pyc') else p)  # 2.7's trees hold .pyc
print(rel(sys.prefix), sysconfig.get_config_var('Py_DEBUG'), sysconfig.is_python_build())
print([rel(p) for p in sys.path if p])
print(sorted(source(m.__file__) for m in (os, threading, sysconfig)))
"""


def _probe(python: Path) -> str:
    ran = subprocess.run(
        [str(python), "-c", _PROBE],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        # The trees are only read: no bytecode written beside their sources.
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        | {"PYTHONDONTWRITEBYTECODE": "1"},
        cwd="/",
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""  # no "Could not find platform independent libraries"
    return ran.stdout


@pytest.mark.parametrize("built", _BUILT, ids=[str(p) for p in _BUILT])
def test_a_stored_cpython_build_runs_moved_as_in_its_build_tree(
    built: Path, tmp_path: Path
) -> None:
    config = BuildConfig(command=None, interpreter="python", jobs=1, timeout=60)
    stored = BuildCache(tmp_path / "here" / "builds").store(
        fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=built,
        selection=config.stored_files,
    )  # fmt: skip
    shutil.move(tmp_path / "here", tmp_path / "there")
    moved = tmp_path / "there" / stored.tree.relative_to(tmp_path / "here")
    assert _probe(moved / "python") == _probe(built / "python")
    assert "<tree>/Lib" in _probe(moved / "python")  # its own library, no installed one
    assert find_libpython(moved / "python") == moved / "Tools" / "gdb" / "libpython.py"
