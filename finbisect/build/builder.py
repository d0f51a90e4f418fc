"""Turn a commit into a runnable interpreter, compiling as little as possible.

Three layers, cheapest first:
1. the build cache: a revision ever built with this configuration compiles
   nothing (its copied tree is run directly);
2. a persistent build tree per (repository, configuration): the next revision
   is checked out there and `make` recompiles what the checkout changed;
   CPython's configure re-runs only when its inputs changed;
3. ccache, when available, for objects compiled before in any tree.

Recipes: the user's `--build-cmd` (run by the shell, as written), or CPython's
own build planned by `cpython.plan_build`. A failed build is a result (the
revision is skipped), never an exception.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from finbisect.build import cpython
from finbisect.build.cache import BuildCache, CachedBuild
from finbisect.build.cpython import Workaround
from finbisect.errors import BuildError
from finbisect.models import Flavour
from finbisect.repo.gitrepo import Workspace
from finbisect.runs import proc

__all__ = ["BuildConfig", "BuildResult", "Builder", "find_ccache"]

# Files whose change makes a configured CPython tree stale.
_CONFIGURE_INPUTS = ["configure", "Makefile.pre.in", "pyconfig.h.in", "Modules/Setup*"]
_CONFIGURE_CACHE_SECONDS = 24 * 3600  # how long configure's cached results are trusted
_TREES = 2  # persistent build trees per configuration
_FULL_BUILD = 10_000  # _rebuild_cost of a fresh tree or a reconfigure
_HEADER_WEIGHT = 50  # a changed header recompiles many files
_ERROR_LINE = re.compile(
    r"(\berror\b|\*\*\*|No such file|not found|undefined reference|Error \d+)", re.IGNORECASE
)
_FIRST_ERROR = re.compile(r"(\berror:|\*\*\*|undefined reference)", re.IGNORECASE)


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
    use_ccache: bool = True

    @property
    def description(self) -> str:
        if self.command is not None:
            return f"build command: {self.command}"
        extra = " ".join(self.configure_flags)
        return f"CPython {self.flavour.value}" + (f" {extra}" if extra else "")

    def fingerprint(self) -> str:
        """Identifies what a build produces: everything but parallelism and ccache.

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
            test_modules=any(cpython.needs_test_modules(text) for text in texts),
            extension_modules=any(cpython.needs_extension_modules(text) for text in texts),
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
    """ccache on PATH, or the one the `finbisect[ccache]` extra installs beside us."""
    beside = Path(sys.executable).parent / "ccache"
    return shutil.which("ccache") or (str(beside) if beside.is_file() else None)


class Builder:
    """Builds revisions one after another; could build ahead on a larger machine."""

    def __init__(
        self, workspace: Workspace, config: BuildConfig, logs: Path, cache: BuildCache
    ) -> None:
        self.workspace = workspace
        self.config = config
        self.logs = logs
        self.cache = cache
        self.fingerprint = config.fingerprint()
        self.ccache = find_ccache() if config.use_ccache else None
        self.tree = workspace.root  # the tree of the build under way (set by build())

    def _pick_tree(self, sha: str) -> Path:
        """The persistent build tree that needs the least recompiling to reach `sha`.

        Each configuration keeps up to `_TREES` trees. A bisection jumps back and
        forth across the range; with one tree, every jump across a configure or
        header change rebuilds everything, while a second tree can stay on the
        other side of it.
        """
        names = [f"build-{self.fingerprint}-{k}" for k in range(_TREES)]
        trees = [self.workspace.root / name for name in names]
        existing = [t for t in trees if (t / ".git").is_file()]
        costs = {t: self._rebuild_cost(t, sha) for t in existing}
        if len(existing) < len(trees):
            costs[trees[len(existing)]] = _FULL_BUILD
        best = min(costs, key=lambda t: costs[t])
        return self.workspace.worktree(best.name)

    def _rebuild_cost(self, tree: Path, sha: str) -> int:
        """A rough count of what make would recompile in `tree` to build `sha`."""
        head = self.workspace.tree_head(tree)
        if head is None:
            return _FULL_BUILD
        changed = self.workspace.changed_files(head, sha)
        if any(fnmatch.fnmatchcase(path, p) for path in changed for p in _CONFIGURE_INPUTS):
            # configure re-runs, and everything after it: a fresh tree costs as much
            # and leaves this one on its side of the change for later jumps back.
            return _FULL_BUILD + 1
        headers = sum(1 for path in changed if path.endswith(".h"))
        return min(_FULL_BUILD - 1, len(changed) + _HEADER_WEIGHT * headers)

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

    def unsupported(self, sha: str) -> str | None:
        """Why this revision cannot be built in the configured flavour, if it cannot."""
        if self.config.command is not None:
            return None
        configure = self.workspace.show(sha, "configure")
        if configure is None:
            return None  # the build itself will say "not a CPython tree"
        return cpython.unsupported_reason(self.config.flavour, configure)

    def build(self, sha: str) -> BuildResult:
        """A runnable interpreter for `sha`: from the cache, or built now and cached."""
        start = time.monotonic()
        cached = self.cache.lookup(self.fingerprint, sha)
        if cached is not None:
            return _from_cache(cached, seconds=time.monotonic() - start)
        if (reason := self.unsupported(sha)) is not None:
            return BuildResult(
                ok=False,
                interpreter=None,
                reason=reason,
                seconds=0.0,
                cached=False,
                compiled=False,
                log_path=None,
            )
        log_path = self.logs / f"build-{sha[:12]}.log"
        log_path.unlink(missing_ok=True)
        self.tree = self._pick_tree(sha)
        self.workspace.checkout(sha, self.tree)
        if self.config.command is not None:
            result = proc.run_shell(
                self.config.command,
                cwd=self.tree,
                timeout=self.config.timeout,
                log_path=log_path,
                env=self._env({}),
            )
            failure = self._failure(result, what="build command")
        else:
            failure = self._build_cpython(sha, log_path, deadline=start + self.config.timeout)
        interpreter = self.tree / self.config.interpreter
        if failure is None and not (interpreter.is_file() and os.access(interpreter, os.X_OK)):
            failure = f"the build left no executable {self.config.interpreter}"
        seconds = time.monotonic() - start
        if failure is not None:
            errors = _first_errors(log_path)
            if "timed out" not in failure and "signal" not in failure:  # may be transient
                self._store(sha, tree=None, reason=failure, error_lines=errors)
            return BuildResult(
                ok=False,
                interpreter=None,
                reason=failure,
                seconds=seconds,
                cached=False,
                compiled=True,
                log_path=log_path,
                error_lines=errors,
            )
        stored = self._store(sha, tree=self.tree)
        return BuildResult(
            ok=True,
            interpreter=stored.tree / stored.interpreter,
            reason="",
            seconds=time.monotonic() - start,
            cached=False,
            compiled=True,
            log_path=log_path,
        )

    def _store(
        self, sha: str, *, tree: Path | None, reason: str = "", error_lines: tuple[str, ...] = ()
    ) -> CachedBuild:
        return self.cache.store(
            fingerprint=self.fingerprint,
            sha=sha,
            description=self.config.description,
            interpreter=self.config.interpreter,
            tree=tree,
            reason=reason,
            error_lines=error_lines,
        )

    # -- CPython's own build -------------------------------------------------
    def _build_cpython(self, sha: str, log_path: Path, *, deadline: float) -> str | None:
        tree = self.tree
        configure = tree / "configure"
        if not configure.is_file():
            return "no ./configure here: not a CPython tree (pass --build-cmd)"
        plan = cpython.plan_build(
            flavour=self.config.flavour,
            configure_text=configure.read_text(errors="replace"),
            makefile_text=_read(tree / "Makefile.pre.in"),
            patchlevel_text=_read(tree / "Include" / "patchlevel.h"),
            test_modules=self.config.test_modules,
            extension_modules=self.config.extension_modules,
            extra_flags=self.config.configure_flags,
            user_workarounds=self.config.workarounds,
        )
        env = self._env(dict(plan.env))
        if self.ccache is not None:
            env["CC"] = f"{self.ccache} {env.get('CC', 'gcc' if shutil.which('gcc') else 'cc')}"
        # configure's inputs: compared with the tree's stamp, and the key of its cached results
        wanted = json.dumps(
            {
                "flags": list(plan.configure_flags),
                "env": {k: env[k] for k in sorted({*dict(plan.env), "CC"}) if k in env},
                "inputs": self.workspace.blob_ids(sha, _CONFIGURE_INPUTS),
            }
        )
        stamp = tree.with_name(tree.name + ".configured.json")
        if not (tree / "Makefile").is_file() or _read(stamp) != wanted:
            stamp.unlink(missing_ok=True)
            _log_line(
                log_path,
                f"finbisect: configuring ({', '.join(plan.workarounds) or 'no workarounds'})",
            )
            failure = self._configure(
                tree,
                plan.configure_flags,
                env=env,
                wanted=wanted,
                log_path=log_path,
                deadline=deadline,
            )
            if failure is not None:
                return failure
            stamp.write_text(wanted)
        result = proc.run(
            ["make", f"-j{self.config.jobs}", *plan.make_targets],
            cwd=tree,
            timeout=max(1.0, deadline - time.monotonic()),
            log_path=log_path.with_suffix(".make.log"),
            env=env,
        )
        _append(log_path, result.log_path)
        return self._failure(result, what="make")

    def _configure(
        self,
        tree: Path,
        flags: tuple[str, ...],
        *,
        env: dict[str, str],
        wanted: str,
        log_path: Path,
        deadline: float,
    ) -> str | None:
        """Run configure, reusing its test results from an identical earlier run.

        A tree that comes back to a configuration another tree already had skips
        most of configure's tests (about 20 of 23 s on a 3.13 tree). The results
        are kept per exact configure inputs (script, flags, environment), never
        shared across revisions whose configure differs, and trusted for a day:
        they describe this machine's compiler and libraries.
        """
        key = hashlib.sha256(wanted.encode()).hexdigest()[:24]
        shared = self.workspace.root / "configure-cache" / f"{key}.cache"
        for old in shared.parent.glob("*.cache"):  # expired results, this one's included
            with contextlib.suppress(OSError):  # (a concurrent hunt may remove it first)
                if time.time() - old.stat().st_mtime > _CONFIGURE_CACHE_SECONDS:
                    old.unlink()
        local = tree / "config.cache"
        for seeded in (True, False) if shared.is_file() else (False,):
            local.unlink(missing_ok=True)
            if seeded:
                shutil.copyfile(shared, local)
            result = proc.run(
                ["./configure", f"--cache-file={local.name}", *flags],
                cwd=tree,
                timeout=max(1.0, deadline - time.monotonic()),
                log_path=log_path.with_suffix(".configure.log"),
                env=env,
            )
            _append(log_path, result.log_path)
            failure = self._failure(result, what="configure")
            if failure is None or result.timed_out:
                break
            # A cache configure refuses (its precious variables, CFLAGS say, were
            # changed in our environment since): forget it, and configure afresh.
            shared.unlink(missing_ok=True)
        if failure is None and not shared.is_file() and local.is_file():
            shared.parent.mkdir(exist_ok=True)
            staging = shared.with_name(f".{shared.name}.{os.getpid()}.tmp")
            shutil.copyfile(local, staging)
            staging.replace(shared)  # atomic: a concurrent hunt reads all or nothing
        return failure

    def _failure(self, result: proc.ProcResult, *, what: str) -> str | None:
        if result.timed_out:
            return f"{what} timed out after {self.config.timeout:g} s"
        if result.signal is not None:
            return f"{what} was killed by signal {result.signal}"
        if result.returncode != 0:
            return f"{what} failed with exit status {result.returncode}"
        return None

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        if "MAKELEVEL" in env:  # run from a Makefile: the outer jobserver is not ours
            for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
                env.pop(name, None)
        for name, value in extra.items():  # "+value" appends to the user's setting
            if value.startswith("+"):
                env[name] = f"{env.get(name, '')} {value[1:]}".strip()
            else:
                env[name] = value
        # ccache: hash paths relative to the tree, so every tree shares hits.
        env.setdefault("CCACHE_DIR", str(self.cache.root.parent / "ccache"))
        env["CCACHE_BASEDIR"] = str(self.tree)
        env["CCACHE_NOHASHDIR"] = "true"
        return env


def _from_cache(build: CachedBuild, *, seconds: float) -> BuildResult:
    return BuildResult(
        ok=build.ok,
        interpreter=build.tree / build.interpreter if build.ok else None,
        reason=build.reason,
        seconds=seconds,
        cached=True,
        compiled=False,
        log_path=None,
        error_lines=build.error_lines,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _log_line(log_path: Path, line: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as out:
        out.write(line + "\n")


def _append(log_path: Path, part: Path) -> None:
    """Collect a phase's log into the step's build log (one file for people to read)."""
    with log_path.open("ab") as out:
        out.write(part.read_bytes())
    part.unlink()


def _first_errors(log_path: Path, limit: int = 3) -> tuple[str, ...]:
    """The compiler's first error lines: what a person reads first in a failed build."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ()
    best = [ln.strip() for ln in lines if _FIRST_ERROR.search(ln)]
    found = best or [ln.strip() for ln in lines[1:] if _ERROR_LINE.search(ln)]
    return tuple(found[:limit])
