"""Builds: CPython's recipe, flavours, the build cache and incremental builds."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finbisect.build.builder import BuildConfig, Builder
from finbisect.build.cache import BuildCache
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from finbisect.testing.histories import linear_history
from tests.conftest import REPRO, invoke
from tests.cpython_like import cpython_like_history


def _json(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "out.json").read_text())
    return data


def _cpython_hunt(repro: Path, cache: Path, tmp_path: Path, repo: Path, *extra: str) -> Any:
    return invoke(
        "run", str(repro), "--repo", str(repo), "--cache-dir", str(cache), "--runs", "1",
        "--json", str(tmp_path / "out.json"), *extra,
    )  # fmt: skip


def _build_trees(cache: Path) -> list[Path]:
    return [p for p in cache.glob("repos/*/build-*") if p.is_dir()]


def test_default_recipe_passes_the_flags_the_revision_knows(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=10, culprit=6)
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad
    )
    assert result.exit_code == 0, result.stderr
    assert _json(tmp_path)["culprit"]["sha"] == history.culprit
    (tree,) = _build_trees(cache)
    args = (tree / "config.args").read_text().split()
    assert args == ["--with-pydebug", "--without-ensurepip", "--disable-test-modules"]
    # 3.12+: only the interpreter and its platform files; the repro (threading)
    # needs no extension module.
    assert (tree / "compile.log").read_text().split()[-1] == "python"
    assert set((tree / "targets.log").read_text().split()) == {"platform"}


def test_a_repro_that_imports_test_modules_gets_them(tmp_path: Path, cache: Path) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=4, culprit=2)
    repro = tmp_path / "needs_testcapi.py"
    repro.write_text("import _testcapi\n")
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad,
        "--flavour", "release",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (tree,) = _build_trees(cache)
    assert (tree / "config.args").read_text().split() == ["--without-ensurepip"]
    assert "sharedmods" in (tree / "targets.log").read_text().split()


def test_a_repro_that_imports_extension_modules_gets_them(tmp_path: Path, cache: Path) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=4, culprit=2)
    repro = tmp_path / "uses_subprocess.py"
    repro.write_text("import subprocess, sys\nsubprocess.run([sys.executable, '-c', '1'])\n")
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad
    )
    assert result.exit_code == 0, result.stderr
    (tree,) = _build_trees(cache)
    assert (tree / "config.args").read_text().split()[-1] == "--disable-test-modules"
    assert set((tree / "targets.log").read_text().split()) == {"platform", "sharedmods"}


def test_configure_reruns_only_when_its_inputs_change(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(
        tmp_path / "repo", commits=32, culprit=20, configure_changes=(9,)
    )
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad
    )
    assert result.exit_code == 0, result.stderr
    built = [history.shas.index(s["sha"]) for s in _json(tmp_path)["steps"]]
    sides = [i >= 9 for i in built]
    assert any(a != b for a, b in itertools.pairwise(sides))  # the hunt crossed the change
    # One build tree per side of the configure change, each configured once: the
    # bisection's jumps back and forth across it reconfigure nothing.
    trees = _build_trees(cache)
    assert len(trees) == 2
    assert [int((t / ".configure-count").read_text()) for t in trees] == [1, 1]


def test_configure_results_outlive_template_changes(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    # Makefile.pre.in changes at 9 and 20 (the configure script never does): each
    # crossing reruns configure, and every run after the first reuses its tests.
    history = cpython_like_history(
        tmp_path / "repo", commits=32, culprit=5, template_changes=(9, 20)
    )
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad,
        "--runs", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    configured = sum(int((t / ".configure-count").read_text()) for t in _build_trees(cache))
    hits = [
        line
        for path in cache.glob("repos/*/build-*/.configure-cache-hits")
        for line in path.read_text().split()
    ]
    assert configured > 2  # the templates made configure run again
    assert hits == ["same"] * (configured - 1)


def test_a_tree_back_at_a_configuration_reuses_its_configure_results(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    # Three configurations (..8, 9..19, 20..) for two trees: after the ends and
    # the middle, going back to the good side reconfigures a tree.
    history = cpython_like_history(
        tmp_path / "repo", commits=32, culprit=5, configure_changes=(9, 20)
    )

    def hunt_afresh() -> list[str]:
        """Hunt with no build cached and no tree configured; the cache hits it saw."""
        for path in [*cache.glob("repos/*/*.configured.json"), *cache.glob("builds/*")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for hits in cache.glob("repos/*/build-*/.configure-cache-hits"):
            hits.unlink()
        result = _cpython_hunt(
            repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad,
            "--runs", "1",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert _json(tmp_path)["culprit"]["sha"] == history.culprit
        found = cache.glob("repos/*/build-*/.configure-cache-hits")
        return [line for path in found for line in path.read_text().split()]

    hits = hunt_afresh()
    trees = _build_trees(cache)
    configured = sum(int((t / ".configure-count").read_text()) for t in trees)
    assert configured > 3  # a tree was configured again
    # Reused results only ever came from the same configure script.
    assert hits
    assert set(hits) == {"same"}

    # A cached result configure refuses is dropped, and configure runs afresh.
    shared = list(cache.glob("repos/*/configure-cache/*.cache"))
    assert len(shared) == 3  # one per configuration
    for path in shared:
        path.write_text("poison\n")
    hunt_afresh()
    assert not any("poison" in path.read_text() for path in shared if path.exists())

    # Results older than a day are not trusted: the machine may have changed.
    for path in cache.glob("repos/*/configure-cache/*.cache"):
        day_before = path.stat().st_mtime - 2 * 86400
        os.utime(path, (day_before, day_before))
    # As in the first hunt (empty cache): only the hunt's own reconfigure reused.
    assert hunt_afresh() == hits


def test_an_endpoint_without_the_flavour_stops_before_building(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=6, culprit=3, tsan_from=2)
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad,
        "--flavour", "tsan",
    )  # fmt: skip
    assert result.exit_code == 6
    assert "--good" in result.stderr
    assert "--with-thread-sanitizer" in result.stderr
    assert not list(cache.glob("repos/*/hunts/*/build-*.log"))


def test_tsan_flavour_configures_with_the_sanitizer(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=12, culprit=9, tsan_from=3)
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.shas[4], "--bad", history.bad,
        "--flavour", "tsan",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (
        (_build_trees(cache)[0] / "config.args").read_text().startswith("--with-thread-sanitizer")
    )


def test_old_versions_get_their_core_modules_built_in_and_the_workarounds_as_arguments(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=4, culprit=2, version=(2, 7))
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad,
        "--workaround", "2.0..3.0:CFLAGS=+-DMINE", "--workaround", "3.0..:CFLAGS=+-DNOT_MINE",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (tree,) = _build_trees(cache)
    args = (tree / "config.args").read_text()
    assert "CFLAGS=" in args
    assert "-DMINE" in args
    assert "NOT_MINE" not in args
    assert "MACHDEP=\n" in (tree / "config.env").read_text()  # never in configure's environment
    # Only the interpreter, with time built in from Setup.dist's commented-out line.
    assert (tree / "Modules" / "Setup.local").read_text().splitlines()[1:] == [
        "time timemodule.c -lm"
    ]
    assert set((tree / "targets.log").read_text().split()) == {"platform"}


@pytest.mark.parametrize(
    "args",
    [
        ["--flavour", "asan", "--build-cmd", "make"],
        ["--workaround", "CFLAGS=x", "--build-cmd", "make"],
        ["--workaround", "3.x..:CFLAGS=x"],
        ["--workaround", "no equals sign"],
        ["--flavour", "fast"],
    ],
)
def test_build_option_misuse_is_a_usage_error(tmp_path: Path, repro: Path, args: list[str]) -> None:
    history = linear_history(tmp_path / "repo", commits=3, culprit=1)
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--cache-dir", str(tmp_path / "c"), *args,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("finbisect: error: ")


def test_a_second_hunt_compiles_nothing(tmp_path: Path, repro: Path, cache: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=40, culprit=25, broken={12, 30})
    args = [
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", "make", "--cache-dir", str(cache),
        "--runs", "1", "--json", str(tmp_path / "out.json"),
        "--no-build-ahead",  # revisions built ahead but never visited would be cached too
    ]  # fmt: skip
    assert invoke(*args).exit_code == 0
    first = _json(tmp_path)
    assert first["builds"] > 0
    assert first["cached_builds"] == 0
    assert invoke(*args).exit_code == 0
    second = _json(tmp_path)
    assert second["culprit"] == first["culprit"]
    assert second["builds"] == 0
    assert second["cached_builds"] == len(second["steps"]) > 0
    assert all(step["cached"] for step in second["steps"])

    listing = invoke("cache", "list", "--cache-dir", str(cache))
    assert listing.exit_code == 0
    assert f"{first['builds']} builds" in listing.stdout
    cleared = invoke("cache", "prune", "--max-size", "0", "--cache-dir", str(cache))
    assert f"removed {first['builds']} builds" in cleared.stdout
    assert "0 builds" in invoke("cache", "list", "--cache-dir", str(cache)).stdout


def test_lru_eviction_keeps_the_most_recently_used(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big.o").write_bytes(b"o" * 100_000)  # objects are not kept
    for sha in ("a" * 40, "b" * 40, "c" * 40):
        (tree / "python").write_bytes(sha.encode() * 250)  # each build's own bytes
        cache.store(fingerprint="f", sha=sha, description="d", interpreter="python", tree=tree)
    assert not (cache.root / "f" / ("a" * 40) / "tree" / "big.o").exists()
    assert cache.lookup("f", "a" * 40) is not None  # now the most recently used
    one = cache.entries()[0].size
    room_for_two = cache.total_bytes() - one  # (the cache's own folders are not a build's)
    # A build used within the grace period is spared (a concurrent hunt may run it).
    assert cache.prune(room_for_two, spare_used_within=3600) == []
    removed = cache.prune(room_for_two)
    assert [b.sha[0] for b in removed] == ["b"]
    assert {b.sha[0] for b in cache.entries()} == {"a", "c"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_incremental_build_is_the_clean_build(tmp_path: Path, repro: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=12, culprit=7, broken={3})
    before, target = history.shas[10], history.shas[4]
    repro.write_text(REPRO)
    config = BuildConfig(command="make", interpreter="python", jobs=1, timeout=60)
    user = UserRepo(history.path)
    with locked_workspace(tmp_path / "cache", user) as workspace:
        workspace.refresh(list(history.shas))
        builder = Builder(workspace, config, tmp_path / "logs", BuildCache(tmp_path / "builds"))
        assert builder.build(before).ok
        incremental = builder.build(target)  # same tree: make recompiles what changed
    assert incremental.ok
    assert incremental.interpreter is not None

    clean = tmp_path / "clean"
    subprocess.run(["git", "clone", "-q", str(history.path), str(clean)], check=True)
    subprocess.run(["git", "-C", str(clean), "checkout", "-q", target], check=True)
    subprocess.run(["make", "-s", "-C", str(clean)], check=True, capture_output=True)

    assert _sha256(incremental.interpreter) == _sha256(clean / "python")
    for python in (incremental.interpreter, clean / "python"):
        done = subprocess.run([str(python), str(repro)], capture_output=True, check=False)
        assert done.returncode == 0


def test_module_needs_split_only_cpython_builds_in_the_cache() -> None:
    def config(command: str | None, needs: bool) -> BuildConfig:
        return BuildConfig(
            command=command,
            interpreter="python",
            jobs=1,
            timeout=60,
            test_modules=needs,
            extension_modules=needs,
        )

    # The user's build command builds what it builds, whatever the repro imports.
    assert config("make", True).fingerprint() == config("make", False).fingerprint()
    assert config(None, True).fingerprint() != config(None, False).fingerprint()


def test_a_build_that_cannot_import_the_repros_modules_is_not_trusted(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=10, culprit=6, broken_modules=(3,))
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad
    )
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    broken = [s for s in data["steps"] if s["sha"] == history.shas[3]]
    if broken:  # the search asked for it: a skip with the cause, never run
        (step,) = broken
        assert step["verdict"] == "skip"
        assert step["runs"] == 0
        assert "cannot import _finbisect_broken" in step["reason"]
        assert "unrecognized option '-Wall'" in step["reason"]
    entry = BuildCache(cache / "builds").entries()
    assert all(not e.ok for e in entry if e.sha == history.shas[3])


def test_an_endpoint_whose_build_cannot_import_the_repros_modules_is_refused(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=4, culprit=2, broken_modules=(3,))
    result = _cpython_hunt(
        repro, cache, tmp_path, history.path, "--good", history.good, "--bad", history.bad
    )
    assert result.exit_code == 6
    assert "cannot import _finbisect_broken" in result.stderr
    assert "unrecognized option '-Wall'" in result.stderr


def test_a_damaged_cached_interpreter_is_built_again(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    history = cpython_like_history(tmp_path / "repo", commits=6, culprit=3)
    ends = ("--good", history.good, "--bad", history.bad)
    assert _cpython_hunt(repro, cache, tmp_path, history.path, *ends).exit_code == 0
    first = _json(tmp_path)
    for build in BuildCache(cache / "builds").entries():  # truncate every cached python
        (build.tree / build.interpreter).write_bytes(b"\x7fELF")
    again = _cpython_hunt(repro, cache, tmp_path, history.path, *ends)
    assert again.exit_code == 0, again.stderr
    second = _json(tmp_path)
    assert second["culprit"] == first["culprit"]
    assert second["builds"] == len(second["steps"])  # every one built afresh, none trusted


def test_a_build_the_machine_failed_is_not_remembered(tmp_path: Path, repro: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=6, culprit=3)
    cache = tmp_path / "cache"
    flag, count = tmp_path / "disk-full", tmp_path / "builds"
    flag.touch()
    build = (  # the disk fills up at the third build
        f"echo x >> {count}; if [ -e {flag} ] && [ $(wc -l < {count}) -ge 3 ]; then "
        "echo 'cc1: error: No space left on device'; exit 1; fi; make"
    )
    args = [
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", build, "--cache-dir", str(cache), "--runs", "1",
        "--json", str(tmp_path / "out.json"),
    ]  # fmt: skip
    full = invoke(*args)
    assert full.exit_code == 8
    assert "no space left on device" in full.stderr
    assert "Traceback" not in full.stderr
    assert len(BuildCache(cache / "builds").entries()) == 2  # the failure is not among them
    flag.unlink()  # the disk is mended: the same command resumes and answers
    mended = invoke(*args)
    assert mended.exit_code == 0, mended.stderr
    assert "resuming interrupted hunt" in mended.stderr
    assert _json(tmp_path)["culprit"]["sha"] == history.culprit
