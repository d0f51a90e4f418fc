"""CPython's own build in one persistent tree: configure when its inputs changed, then make.

The plan (flags, environment, make targets) comes from cpython.plan_build, which reads
the revision's own files. configure re-runs only when the tree's last configure had
other inputs, and then reuses the test results of an identical earlier run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from finbisect.build import cpython
from finbisect.build.config import BuildConfig
from finbisect.build.failures import step_failure
from finbisect.repo.gitrepo import Workspace
from finbisect.runs import proc

__all__ = ["CONFIGURE_INPUTS", "build_cpython"]

# Files whose change makes a configured CPython tree stale.
CONFIGURE_INPUTS = ["configure", "Makefile.pre.in", "pyconfig.h.in", "Modules/Setup*"]
_CONFIGURE_CACHE_SECONDS = 24 * 3600  # how long configure's cached results are trusted

_OURS = "# finbisect:"  # how the Setup.local we write begins
Env = Callable[[dict[str, str]], dict[str, str]]  # the build environment with these additions


def build_cpython(
    workspace: Workspace,
    config: BuildConfig,
    tree: Path,
    sha: str,
    *,
    env_for: Env,
    ccache: str | None,
    log_path: Path,
    deadline: float,
) -> str | None:
    """Build `sha`, checked out in `tree`; None when it built, else why not (one line)."""
    configure = tree / "configure"
    if not configure.is_file():
        return "no ./configure here: not a CPython tree (pass --build-cmd)"
    plan = cpython.plan_build(
        flavour=config.flavour,
        configure_text=configure.read_text(errors="replace"),
        makefile_text=_read(tree / "Makefile.pre.in"),
        patchlevel_text=_read(tree / "Include" / "patchlevel.h"),
        setup_texts=_setup_files(workspace, sha),
        test_modules=config.test_modules,
        extension_modules=config.extension_modules,
        extra_flags=config.configure_flags,
        user_workarounds=config.workarounds,
        environ=os.environ,
    )
    env = env_for(dict(plan.env))
    # Before configure, which runs makesetup over it (make reruns it when it changes).
    local = tree / "Modules" / "Setup.local"
    if plan.setup_local:
        local.write_text(plan.setup_local)
    elif local.is_file() and local.read_text().startswith(_OURS):
        local.unlink()  # ours, from another plan: back to the tree's own
    if ccache is not None:
        env["CC"] = f"{ccache} {env.get('CC', 'gcc' if shutil.which('gcc') else 'cc')}"
    # What configure's tests depend on (the script, its flags and environment): the key
    # of their cached results. Makefile.pre.in, pyconfig.h.in and the Setup files are
    # only templates it fills in, so they decide whether to rerun it, not what it finds.
    tested = {
        "flags": list(plan.configure_flags),
        "env": {k: env[k] for k in sorted({*dict(plan.env), "CC"}) if k in env},
        "script": workspace.blob_ids(sha, ["configure"]),
    }
    wanted = json.dumps(
        {
            **tested,
            "inputs": workspace.blob_ids(sha, CONFIGURE_INPUTS),
            "setup_local": plan.setup_local,
        }
    )
    stamp = tree.with_name(tree.name + ".configured.json")
    if not (tree / "Makefile").is_file() or _read(stamp) != wanted:
        stamp.unlink(missing_ok=True)
        _log_line(
            log_path, f"finbisect: configuring ({', '.join(plan.workarounds) or 'no workarounds'})"
        )
        failure = _configure(
            workspace.root / "configure-cache",
            tree,
            plan.configure_flags,
            env=env,
            cache_key=json.dumps(tested),
            log_path=log_path,
            deadline=deadline,
            timeout=config.timeout,
        )
        if failure is not None:
            return failure
        stamp.write_text(wanted)
    result = proc.run(
        ["make", f"-j{config.jobs}", *plan.make_targets],
        cwd=tree,
        timeout=max(1.0, deadline - time.monotonic()),
        log_path=log_path.with_suffix(".make.log"),
        env=env,
    )
    _append(log_path, result.log_path)
    return step_failure(result, what="make", timeout=config.timeout)


def _configure(
    cache_dir: Path,
    tree: Path,
    flags: tuple[str, ...],
    *,
    env: dict[str, str],
    cache_key: str,
    log_path: Path,
    deadline: float,
    timeout: float,
) -> str | None:
    """Run configure, reusing its test results from an identical earlier run.

    A tree that comes back to a configure script another tree already ran
    skips most of its tests (about 20 of 23 s on a 3.13 tree), also when only
    the templates changed (Makefile.pre.in: most Debian patches). The results
    are kept per exact script, flags and environment (`cache_key`), never
    shared across revisions whose configure differs, and trusted for a day:
    they describe this machine's compiler and libraries.
    """
    key = hashlib.sha256(cache_key.encode()).hexdigest()[:24]
    shared = cache_dir / f"{key}.cache"
    for old in cache_dir.glob("*.cache"):  # expired results, this one's included
        with contextlib.suppress(OSError):  # (a concurrent hunt may remove it first)
            if time.time() - old.stat().st_mtime > _CONFIGURE_CACHE_SECONDS:
                old.unlink()
    local = tree / "config.cache"
    failure: str | None = None
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
        failure = step_failure(result, what="configure", timeout=timeout)
        if failure is None or result.timed_out:
            break
        # A cache configure refuses (its precious variables, CFLAGS say, were
        # changed in our environment since): forget it, and configure afresh.
        shared.unlink(missing_ok=True)
    if failure is None and not shared.is_file() and local.is_file():
        cache_dir.mkdir(exist_ok=True)
        staging = shared.with_name(f".{shared.name}.{os.getpid()}.tmp")
        shutil.copyfile(local, staging)
        staging.replace(shared)  # atomic: a concurrent hunt reads all or nothing
    return failure


def _setup_files(workspace: Workspace, sha: str) -> dict[str, str]:
    """The revision's Modules/Setup* files, by path."""
    texts = {}
    for path in workspace.blob_ids(sha, ["Modules/Setup*"]):
        text = workspace.show(sha, path)
        if text is not None:
            texts[path] = text
    return texts


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
