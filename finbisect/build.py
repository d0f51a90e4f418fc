"""Turn a commit into a runnable interpreter in finbisect's work tree.

Two recipes: the user's own `--build-cmd` (run by the shell, as written), or
CPython's own build (`./configure` with flags the revision supports, re-run
only when its inputs changed, then `make -jN`). Builds are incremental: the
work tree keeps its objects between revisions and make recompiles what the
checkout changed. A failed build is a result (the revision is skipped), not
an exception.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from finbisect import proc
from finbisect.errors import BuildError
from finbisect.gitrepo import Workspace

__all__ = ["BuildConfig", "BuildResult", "Builder"]

# Files whose change makes a configured CPython tree stale.
_CONFIGURE_INPUTS = ["configure", "Makefile.pre.in", "pyconfig.h.in", "Modules/Setup*"]
# configure options we pass when the revision's configure script knows them.
_OPTIONAL_FLAGS = {
    "--with-pydebug": "with_pydebug",  # assertions + debug allocator: races crash reliably
    "--without-ensurepip": "with_ensurepip",  # pip is never needed to run a repro
    "--disable-test-modules": "enable_test_modules",  # _testcapi & co. are not built
}
_ERROR_LINE = re.compile(
    r"(\berror\b|\*\*\*|No such file|not found|undefined reference|Error \d+)", re.IGNORECASE
)


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    command: str | None  # the user's --build-cmd; None: CPython's own build
    interpreter: str  # executable to run, relative to the work tree
    jobs: int
    timeout: float  # seconds


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    ok: bool
    interpreter: Path | None
    reason: str  # why it failed, one line; "" when ok
    seconds: float
    cached: bool  # no compilation was needed
    log_path: Path
    error_lines: tuple[str, ...] = ()  # the first error lines of the log


class Builder:
    """Builds revisions one after another in the workspace's single work tree."""

    def __init__(self, workspace: Workspace, config: BuildConfig, logs: Path) -> None:
        self.workspace = workspace
        self.config = config
        self.logs = logs
        self.tree = workspace.clone_dir
        self._stamp = workspace.root / "configured.json"

    def check_tools(self) -> None:
        """Refuse early when the default recipe's tools are missing (exit 6)."""
        if self.config.command is not None:
            return
        missing = [tool for tool in ("make", "cc") if shutil.which(tool) is None]
        if missing:
            raise BuildError(
                f"cannot build CPython: {' and '.join(missing)} not found on PATH "
                "(install a C toolchain, or pass --build-cmd)"
            )

    def build(self, sha: str) -> BuildResult:
        """Check out `sha` and build it; the interpreter stays valid until the next build."""
        start = time.monotonic()
        log_path = self.logs / f"build-{sha[:12]}.log"
        log_path.unlink(missing_ok=True)
        self.workspace.checkout(sha)
        if self.config.command is not None:
            result = proc.run_shell(
                self.config.command,
                cwd=self.tree,
                timeout=self.config.timeout,
                log_path=log_path,
                env=self._env(),
            )
            failure = self._failure(result, what="build command")
        else:
            failure = self._build_cpython(sha, log_path, deadline=start + self.config.timeout)
        seconds = time.monotonic() - start
        if failure is None:
            interpreter = self.tree / self.config.interpreter
            if interpreter.is_file() and os.access(interpreter, os.X_OK):
                return BuildResult(
                    ok=True,
                    interpreter=interpreter,
                    reason="",
                    seconds=seconds,
                    cached=False,
                    log_path=log_path,
                )
            failure = f"the build left no executable {self.config.interpreter}"
        return BuildResult(
            ok=False,
            interpreter=None,
            reason=failure,
            seconds=seconds,
            cached=False,
            log_path=log_path,
            error_lines=_first_errors(log_path),
        )

    # -- CPython's own build -------------------------------------------------
    def _build_cpython(self, sha: str, log_path: Path, *, deadline: float) -> str | None:
        configure = self.tree / "configure"
        if not configure.is_file():
            return "no ./configure here: not a CPython tree (pass --build-cmd)"
        flags = _supported_flags(configure.read_text(errors="replace"))
        inputs = self.workspace.blob_ids(sha, _CONFIGURE_INPUTS)
        wanted = {"flags": flags, "inputs": inputs}
        if not (self.tree / "Makefile").is_file() or self._configured() != wanted:
            self._stamp.unlink(missing_ok=True)
            result = proc.run(
                ["./configure", *flags],
                cwd=self.tree,
                timeout=max(1.0, deadline - time.monotonic()),
                log_path=log_path.with_suffix(".configure.log"),
                env=self._env(),
            )
            _append(log_path, result.log_path)
            failure = self._failure(result, what="configure")
            if failure is not None:
                return failure
            self._stamp.write_text(json.dumps(wanted))
        result = proc.run(
            ["make", f"-j{self.config.jobs}"],
            cwd=self.tree,
            timeout=max(1.0, deadline - time.monotonic()),
            log_path=log_path.with_suffix(".make.log"),
            env=self._env(),
        )
        _append(log_path, result.log_path)
        return self._failure(result, what="make")

    def _configured(self) -> object:
        try:
            return json.loads(self._stamp.read_text())
        except (OSError, ValueError):
            return None

    def _failure(self, result: proc.ProcResult, *, what: str) -> str | None:
        if result.timed_out:
            return f"{what} timed out after {self.config.timeout:g} s"
        if result.signal is not None:
            return f"{what} was killed by signal {result.signal}"
        if result.returncode != 0:
            return f"{what} failed with exit status {result.returncode}"
        return None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if "MAKELEVEL" in env:  # run from a Makefile: the outer jobserver is not ours
            for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
                env.pop(name, None)
        return env


def _supported_flags(configure_text: str) -> list[str]:
    return [flag for flag, var in _OPTIONAL_FLAGS.items() if var in configure_text]


def _append(log_path: Path, part: Path) -> None:
    """Collect a phase's log into the step's build log (one file for people to read)."""
    with log_path.open("ab") as out:
        out.write(part.read_bytes())
    part.unlink()


def _first_errors(log_path: Path, limit: int = 3) -> tuple[str, ...]:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ()
    found = [ln.strip() for ln in lines[1:] if _ERROR_LINE.search(ln)]
    return tuple(found[:limit])
