"""Turn a commit into a runnable interpreter, compiling as little as possible.

Three layers, cheapest first:
1. the build cache: a revision ever built with this configuration compiles
   nothing (its stored files are run directly);
2. a persistent build tree per (repository, configuration): the next revision
   is checked out there and `make` recompiles what the checkout changed;
   CPython's configure re-runs only when its inputs changed (cpython_build.py);
3. ccache, for objects compiled before in any tree.

A build is trusted only once checked (check.py): CPython's interpreter must start
and import what the repro imports. A failed build is a result (the revision is
skipped), never an exception, unless the machine failed it (MachineError).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import time
from pathlib import Path

from finbisect.build import cpython, leftovers
from finbisect.build.cache import (
    CCACHE_DEFAULT_BYTES,
    BuildCache,
    CachedBuild,
    record_in_use,
)
from finbisect.build.check import cause_in_log, check_interpreter
from finbisect.build.config import BuildConfig, BuildResult, find_ccache
from finbisect.build.cpython_build import CONFIGURE_INPUTS, build_cpython
from finbisect.build.failures import first_errors, machine_problem, step_failure, stopped_midway
from finbisect.errors import BuildError, MachineError
from finbisect.repo.gitrepo import Workspace
from finbisect.runs import proc
from finbisect.runs.probe import probe_env

__all__ = ["BuildConfig", "BuildResult", "Builder", "find_ccache"]

_TREES = 2  # persistent build trees per configuration
_FULL_BUILD = 10_000  # _rebuild_cost of a fresh tree or a reconfigure
_HEADER_WEIGHT = 50  # a changed header recompiles many files


class Builder:
    """Builds revisions one after another in a configuration's persistent trees."""

    def __init__(
        self,
        workspace: Workspace,
        config: BuildConfig,
        logs: Path,
        cache: BuildCache,
        *,
        ccache_bytes: int = CCACHE_DEFAULT_BYTES,
    ) -> None:
        self.workspace = workspace
        self.config = config
        self.logs = logs
        self.cache = cache
        self.fingerprint = config.fingerprint()
        self.ccache = find_ccache() if config.use_ccache else None
        self.ccache_bytes = ccache_bytes
        self.tree = workspace.root  # the tree of the build under way (set by build())
        self._trusted_shas: set[str] = set()  # cached builds checked during this hunt

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
        if any(fnmatch.fnmatchcase(path, p) for path in changed for p in CONFIGURE_INPUTS):
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
        if cached is not None and (not cached.ok or self._trusted(cached, sha)):
            if cached.ok:
                record_in_use(self.workspace.root, cached.tree)
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
        leftovers.clear(self.tree)  # a build stopped half-way: its half-written files
        leftovers.begin(self.tree)
        failure = self._run_recipe(sha, log_path, deadline=start + self.config.timeout)
        if failure is None or not stopped_midway(failure):
            leftovers.finish(self.tree)
        if failure is None:
            failure = self._check(self.tree / self.config.interpreter, sha, log_path)
        if failure is not None:
            return self._failed(sha, failure, log_path, seconds=time.monotonic() - start)
        stored = self._store(sha, tree=self.tree)
        record_in_use(self.workspace.root, stored.tree)
        self._trusted_shas.add(sha)
        return BuildResult(
            ok=True,
            interpreter=stored.tree / stored.interpreter,
            reason="",
            seconds=time.monotonic() - start,
            cached=False,
            compiled=True,
            log_path=log_path,
        )

    def _run_recipe(self, sha: str, log_path: Path, *, deadline: float) -> str | None:
        if self.config.command is None:
            return build_cpython(
                self.workspace, self.config, self.tree, sha, env_for=self._env,
                ccache=self.ccache, log_path=log_path, deadline=deadline,
            )  # fmt: skip
        result = proc.run_shell(
            self.config.command,
            cwd=self.tree,
            timeout=self.config.timeout,
            log_path=log_path,
            env=self._env({}),
        )
        return step_failure(result, what="build command", timeout=self.config.timeout)

    def _check(self, interpreter: Path, sha: str, log_path: Path) -> str | None:
        """Why the built interpreter cannot be trusted, if it cannot.

        CPython's own build must start and import what the repro imports; the
        user's --build-cmd may build anything, so only its executable is checked.
        """
        if not (interpreter.is_file() and os.access(interpreter, os.X_OK)):
            return f"the build left no executable {self.config.interpreter}"
        if self.config.command is not None:
            return None
        failure = check_interpreter(
            interpreter,
            self.config.required_modules,
            log_path=self.logs / f"check-{sha[:12]}.log",
            env=probe_env(os.environ),
        )
        if failure is None:
            return None
        cause = cause_in_log(log_path.read_text(errors="replace"), failure)
        return f"{failure} (build log: {cause})" if cause else failure

    def _trusted(self, cached: CachedBuild, sha: str) -> bool:
        """A cached interpreter still passes the check (a damaged copy, or one built for a
        repro importing less, is built afresh)."""
        if self.config.command is not None or sha in self._trusted_shas:
            return True
        log_path = self.logs / f"check-{sha[:12]}.log"
        interpreter = cached.tree / cached.interpreter
        passed = check_interpreter(
            interpreter, self.config.required_modules, log_path=log_path, env=probe_env(os.environ)
        )
        if passed is not None:
            self.cache.discard(cached)
            return False
        self._trusted_shas.add(sha)
        return True

    def _failed(self, sha: str, failure: str, log_path: Path, *, seconds: float) -> BuildResult:
        """A failed build: the machine's fault is raised, the revision's is remembered."""
        problem = machine_problem(log_path, failure)
        if problem is not None and "timed out" not in problem and "signal" not in problem:
            raise MachineError(
                f"building {sha[:12]} failed for a reason of this machine, not the revision: "
                f"{problem} (cache dir {self.cache.root.parent}); nothing was cached; run the "
                "same command again to resume"
            )
        errors = first_errors(log_path)
        if problem is None:  # a timeout or a killed build may not happen again: not cached
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

    def _store(
        self, sha: str, *, tree: Path | None, reason: str = "", error_lines: tuple[str, ...] = ()
    ) -> CachedBuild:
        try:
            return self.cache.store(
                fingerprint=self.fingerprint,
                sha=sha,
                description=self.config.description,
                interpreter=self.config.interpreter,
                tree=tree,
                selection=self.config.stored_files,
                reason=reason,
                error_lines=error_lines,
            )
        except OSError as exc:
            raise MachineError(
                f"cannot store the build of {sha[:12]} in {self.cache.root}: "
                f"{exc.strerror or exc}; nothing was cached; run the same command again to resume"
            ) from None

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
        # ccache: inside our cache (and within its share of --cache-size), hashing paths
        # relative to the tree, so that every tree shares hits.
        env["CCACHE_DIR"] = str(self.cache.ccache_dir)
        env["CCACHE_MAXSIZE"] = str(self.ccache_bytes)
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
