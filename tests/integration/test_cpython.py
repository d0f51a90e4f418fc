"""Real CPython builds (opt-in): `FINBISECT_CPYTHON=/path/to/checkout pytest -m cpython`.

The checkout is only read: (a) works in a local clone with one commit added,
(b) builds the checkout's HEAD. The flavour builds take minutes each, so they
are also marked `slow`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from finbisect.build.builder import BuildConfig, Builder, BuildResult
from finbisect.build.cache import BuildCache
from finbisect.models import Flavour
from finbisect.repo.gitrepo import UserRepo, Workspace, locked_workspace
from finbisect.runs.probe import probe_env

pytestmark = pytest.mark.cpython

_CHECKOUT = os.environ.get("FINBISECT_CPYTHON", "")
_MARKER = "finbisect-incremental-marker"
# A C compiler invocation compiling one source file (possibly behind ccache).
_COMPILE = re.compile(r"(?:^|\s)(?:\S*/)?(?:gcc|cc|clang)(?:-\d+)?\s(?:.*\s)?-c\s")
_REPRO = """\
import threading, time

def sleeper():
    while True:
        time.sleep(0.01)

threading.Thread(target=sleeper, daemon=True).start()
time.sleep(0.05)
print("repro done")
"""
_IMPORTS = "import threading, time, os, signal, faulthandler, sys, sysconfig"


@pytest.fixture(scope="module")
def checkout() -> Path:
    if not _CHECKOUT:
        pytest.skip("set FINBISECT_CPYTHON to a CPython git checkout")
    path = Path(_CHECKOUT)
    if not (path / ".git").exists() or not (path / "configure").is_file():
        pytest.skip(f"FINBISECT_CPYTHON={_CHECKOUT} is not a CPython git checkout")
    return path


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _config(flavour: Flavour = Flavour.PYDEBUG, *, extension_modules: bool = True) -> BuildConfig:
    return BuildConfig(
        command=None,
        interpreter="python",
        jobs=os.cpu_count() or 1,
        timeout=3600.0,
        flavour=flavour,
        extension_modules=extension_modules,
    )


@contextmanager
def _workspace(cache_dir: Path, repo: Path, shas: list[str]) -> Iterator[Workspace]:
    """finbisect's clone of `repo` under `cache_dir`, holding `shas`."""
    with locked_workspace(cache_dir, UserRepo(repo)) as workspace:
        workspace.refresh(shas)
        yield workspace


def _python(interpreter: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a built interpreter the way the probe does (its environment included)."""
    return subprocess.run(
        [str(interpreter), *args],
        cwd=cwd,
        env=probe_env(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _compiled(result: BuildResult) -> list[str]:
    assert result.log_path is not None
    return [ln for ln in result.log_path.read_text().splitlines() if _COMPILE.search(ln)]


def _explain(result: BuildResult) -> str:
    return f"{result.reason}: {' | '.join(result.error_lines)} (log: {result.log_path})"


def test_second_revision_builds_incrementally(checkout: Path, tmp_path: Path) -> None:
    # A clone of the checkout with one commit that changes one C file, visibly.
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(checkout), str(repo)], check=True)
    before = _git(repo, "rev-parse", "HEAD")
    source = repo / "Python" / "getcopyright.c"
    text = source.read_text()
    assert "Python Software Foundation." in text
    source.write_text(text.replace("Python Software Foundation.", f"PSF. {_MARKER}", 1))
    _git(repo, "commit", "-q", "-am", "Change the copyright string")
    after = _git(repo, "rev-parse", "HEAD")
    repro = tmp_path / "repro.py"
    repro.write_text(_REPRO)

    with _workspace(tmp_path / "cache", repo, [before, after]) as workspace:
        builder = Builder(
            workspace, _config(), tmp_path / "logs", BuildCache(tmp_path / "cache" / "builds")
        )
        first = builder.build(before)
        assert first.ok, _explain(first)
        assert len(_compiled(first)) > 100  # a full build
        second = builder.build(after)
        assert second.ok, _explain(second)
        compiled = _compiled(second)
        # getcopyright.c, plus what CPython's Makefile redoes at every relink
        # (getbuildinfo.c; getpath.c and frozen.c after _freeze_module): 5 in 3.13.
        assert 1 <= len(compiled) <= 10, compiled
        assert any("getcopyright.c" in line for line in compiled)
        assert second.seconds < first.seconds / 3

        assert first.interpreter is not None
        assert second.interpreter is not None
        assert first.interpreter != second.interpreter  # each revision has its cached build
        for interpreter, marked in ((first.interpreter, False), (second.interpreter, True)):
            ran = _python(interpreter, "-c", "import sys; print(sys.copyright)", cwd=tmp_path)
            assert ran.returncode == 0, ran.stderr
            assert (_MARKER in ran.stdout) is marked
            ran = _python(interpreter, str(repro), cwd=tmp_path)
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.strip() == "repro done"
            # Built with extension modules (a repro importing subprocess gets them).
            ran = _python(interpreter, "-c", "import socket, subprocess, asyncio", cwd=tmp_path)
            assert ran.returncode == 0, ran.stderr

        again = builder.build(after)  # a third request compiles nothing
        assert again.cached
        assert not again.compiled


# What each flavour's interpreter must show about itself.
_PROOF = {
    Flavour.RELEASE: "not hasattr(sys, 'gettotalrefcount')",
    Flavour.PYDEBUG: "hasattr(sys, 'gettotalrefcount')",
    Flavour.ASAN: "'--with-address-sanitizer' in sysconfig.get_config_var('CONFIG_ARGS')",
    Flavour.TSAN: "'--with-thread-sanitizer' in sysconfig.get_config_var('CONFIG_ARGS')",
    Flavour.NOGIL: "sysconfig.get_config_var('Py_GIL_DISABLED') == 1",
}


@pytest.mark.slow
@pytest.mark.parametrize("flavour", list(Flavour), ids=[f.value for f in Flavour])
def test_flavour_builds_and_runs(checkout: Path, tmp_path: Path, flavour: Flavour) -> None:
    head = UserRepo(checkout).resolve("HEAD")
    with _workspace(tmp_path / "cache", checkout, [head]) as workspace:
        builder = Builder(
            workspace,
            _config(flavour, extension_modules=False),  # what `import threading` & co. get
            tmp_path / "logs",
            BuildCache(tmp_path / "cache" / "builds"),
        )
        if (reason := builder.unsupported(head)) is not None:
            pytest.skip(reason)
        built = builder.build(head)
        assert built.ok, _explain(built)
        assert built.interpreter is not None
        code = f"{_IMPORTS}\nassert {_PROOF[flavour]}\nprint('imports ok')"
        ran = _python(built.interpreter, "-c", code, cwd=tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.strip().endswith("imports ok")
        # Nothing more was built: no extension module (socket is one from 3.12).
        shared = _python(built.interpreter, "-c", "import socket", cwd=tmp_path)
        assert "No module named" in shared.stderr
