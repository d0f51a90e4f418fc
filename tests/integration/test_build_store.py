"""The build cache's stored files: CPython's runtime files only, each distinct file
once (hard links, read-only), sizes that count shared bytes once, and stored
builds that run from wherever the cache is moved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

from finbisect.build.cache import BuildCache, Selection
from finbisect.build.cpython import RUNTIME_FILES, RUNTIME_SKIPPED
from finbisect.build.objects import EVERYTHING, _selected
from finbisect.runs import proc
from finbisect.testing.histories import GeneratedHistory
from tests.conftest import invoke
from tests.cpython_like import cpython_like_history

_WRITABLE = 0o222


def _files(tree: Path) -> set[str]:
    return {
        str((Path(root) / name).relative_to(tree))
        for root, dirs, names in os.walk(tree)
        if "__pycache__" not in root
        for name in names
    }


def _hunt(tmp_path: Path, repro: Path, cache: Path) -> GeneratedHistory:
    """A hunt over a CPython-like history whose culprit is its fourth commit."""
    history = cpython_like_history(tmp_path / "repo", commits=6, culprit=3)
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--cache-dir", str(cache), "--runs", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return history


def test_cpython_builds_keep_their_runtime_files_once(
    tmp_path: Path, repro: Path, cache: Path
) -> None:
    _hunt(tmp_path, repro, cache)
    builds = [b for b in BuildCache(cache / "builds").entries() if b.ok]
    assert len(builds) >= 3
    for build in builds:
        assert _files(build.tree) == {
            "python",
            "pybuilddir.txt",
            "Lib/os.py",
            "Lib/json/__init__.py",
            "build/lib.fake/_sysconfigdata_fake.py",
            "build/lib.fake/_fake.so",  # the file the build tree's link named
            "Modules/Setup.stdlib.in",
            "Tools/gdb/libpython.py",
        }  # not Doc/, the sources, configure's and make's leftovers
        assert not (build.tree / "build/lib.fake/_fake.so").is_symlink()
    # Lib/os.py is one file, linked into every build, and nobody's to change.
    landmarks = [(b.tree / "Lib" / "os.py").stat() for b in builds]
    assert len({(s.st_dev, s.st_ino) for s in landmarks}) == 1
    assert landmarks[0].st_nlink == len(builds) + 1  # the builds' links and the object
    assert all(s.st_mode & _WRITABLE == 0 for s in landmarks)
    # A build's size is what it alone holds: its interpreter, not the shared Lib/os.py.
    os_py = landmarks[0].st_blocks * 512
    assert all(b.size < os_py for b in builds)
    total = BuildCache(cache / "builds").total_bytes()
    assert os_py < total < 2 * os_py


def test_a_stored_build_runs_from_anywhere(tmp_path: Path, repro: Path, cache: Path) -> None:
    history = _hunt(tmp_path, repro, cache)
    elsewhere = tmp_path / "elsewhere" / "builds"
    elsewhere.parent.mkdir()
    shutil.move(cache / "builds", elsewhere)  # the build trees it was made in stay put
    builds = [b for b in BuildCache(elsewhere).entries() if b.ok]
    assert len(builds) >= 3
    for build in builds:
        python = str(build.tree / build.interpreter)
        run = subprocess.run([python, str(repro)], capture_output=True, text=True, check=False)
        assert "Could not find" not in run.stderr  # its landmarks, where it is now
        crashes = history.shas.index(build.sha) >= 3
        assert (run.returncode != 0) == crashes, run.stderr
        assert ("Fatal Python error" in run.stderr) == crashes
        # What the build check runs: the interpreter hands over to the real Python.
        assert subprocess.run([python, "-c", "pass"], check=False).returncode == 0


def _tree(path: Path, *, interpreter: bytes, library: bytes) -> Path:
    (path / "Lib").mkdir(parents=True)
    (path / "python").write_bytes(interpreter)
    (path / "python").chmod(0o755)
    (path / "Lib" / "big.py").write_bytes(library)
    (path / "Doc.txt").write_bytes(library)  # not selected
    return path


def test_shared_files_count_once_and_outlive_the_builds_pruned(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds")
    library = os.urandom(512 * 1024)
    selection = Selection(include=("python", "Lib/*"))
    for sha in ("a" * 40, "b" * 40):
        tree = _tree(tmp_path / sha, interpreter=os.urandom(64 * 1024), library=library)
        stored = cache.store(
            fingerprint="f", sha=sha, description="d", interpreter="python", tree=tree,
            selection=selection,
        )  # fmt: skip
        assert not (stored.tree / "Doc.txt").exists()
    first, second = sorted(cache.entries(), key=lambda b: b.sha)
    # Each holds its interpreter alone; the library is counted once, in the total.
    assert 64 * 1024 <= first.size < 128 * 1024
    assert 64 * 1024 <= second.size < 128 * 1024
    assert 640 * 1024 <= cache.total_bytes() < 2 * 512 * 1024
    listing = invoke("cache", "list", "--cache-dir", str(tmp_path))
    assert listing.exit_code == 0, listing.stderr
    assert "2 builds, 6" in listing.stdout  # ~650 KiB: 0.6 MiB, not 1.1

    os.utime(first.path / "build.json", (1, 1))  # the least recently used
    removed = cache.prune(cache.total_bytes() - 1)
    assert [b.sha for b in removed] == [first.sha]
    assert removed[0].size == first.size  # the bytes it alone held: freed
    # The survivor's files are intact, and now its alone.
    assert (second.tree / "Lib" / "big.py").read_bytes() == library
    assert (second.tree / "Lib" / "big.py").stat().st_nlink == 2
    assert cache.entries()[0].size > 512 * 1024
    objects = [p for p in (tmp_path / "builds" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 2  # the survivor's interpreter and library; the other's is gone

    assert [b.sha for b in cache.clear()] == [second.sha]
    assert not [p for p in (tmp_path / "builds" / "objects").rglob("*") if p.is_file()]


def test_stored_files_are_read_only_and_a_replaced_one_changes_only_its_build(
    tmp_path: Path,
) -> None:
    cache = BuildCache(tmp_path / "builds")
    tree = _tree(tmp_path / "tree", interpreter=b"#!/bin/sh\n", library=b"shared = 1\n")
    one, two = (
        cache.store(fingerprint="f", sha=sha, description="d", interpreter="python", tree=tree)
        for sha in ("a" * 40, "b" * 40)
    )
    for build in (one, two):
        for name in ("python", "Lib/big.py"):
            assert (build.tree / name).stat().st_mode & _WRITABLE == 0
    assert os.access(one.tree / "python", os.X_OK)
    if os.geteuid() != 0:  # root writes read-only files: only modes can be checked
        try:
            (one.tree / "Lib" / "big.py").write_bytes(b"changed")
        except PermissionError:
            pass
        else:
            raise AssertionError("a shared file was writable")
    # What Python does when it writes bytecode, or a user's tool edits a file: a new
    # file replaces the link in one build's (writable) directory; the others keep theirs.
    replacement = one.tree / "Lib" / "big.py.tmp"
    replacement.write_bytes(b"changed = 1\n")
    replacement.replace(one.tree / "Lib" / "big.py")
    assert (two.tree / "Lib" / "big.py").read_bytes() == b"shared = 1\n"


def test_a_tree_stored_again_after_changes_stores_the_changes(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds")
    tree = _tree(tmp_path / "tree", interpreter=b"#!/bin/sh\n", library=b"old = 1\n")
    old = cache.store(
        fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=tree
    )
    (tree / "Lib" / "big.py").write_bytes(b"new = 22\n")  # the next revision's checkout
    new = cache.store(
        fingerprint="f", sha="b" * 40, description="d", interpreter="python", tree=tree
    )
    assert (old.tree / "Lib" / "big.py").read_bytes() == b"old = 1\n"
    assert (new.tree / "Lib" / "big.py").read_bytes() == b"new = 22\n"
    assert (new.tree / "python").stat().st_ino == (old.tree / "python").stat().st_ino


def test_a_build_stored_meanwhile_by_another_process_is_kept(tmp_path: Path) -> None:
    """Two workers of one machine share its cache: the second store of a revision keeps
    the first one's tree, which the first may be running from."""
    tree = _tree(tmp_path / "tree", interpreter=b"#!/bin/sh\n", library=b"x = 1\n")
    first_worker, second_worker = BuildCache(tmp_path / "builds"), BuildCache(tmp_path / "builds")
    first = first_worker.store(
        fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=tree
    )
    running = (first.tree / "python").stat().st_ino
    second = second_worker.store(
        fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=tree
    )
    assert second.created == first.created
    assert (second.tree / "python").stat().st_ino == running
    assert [p.name for p in (tmp_path / "builds" / "f").iterdir()] == ["a" * 40]  # no staging


def test_a_damaged_shared_interpreter_is_shared_no_more(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds")
    interpreter = b"#!/bin/sh\n" + b"#" * 4096
    tree = _tree(tmp_path / "tree", interpreter=interpreter, library=b"x = 1\n")
    for sha in ("a" * 40, "b" * 40):
        cache.store(fingerprint="f", sha=sha, description="d", interpreter="python", tree=tree)
    first = cache.lookup("f", "a" * 40)
    assert first is not None
    damaged = first.tree / "python"
    damaged.chmod(0o755)  # what only a disk error, or root, does to a read-only file
    damaged.write_bytes(interpreter.replace(b"#", b"!", 1))  # same size, other bytes
    assert cache.lookup("f", "a" * 40) is None  # to be rebuilt, not trusted
    # Rebuilt while the other build still links the damaged file: a fresh copy.
    again = cache.store(
        fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=tree
    )
    assert (again.tree / "python").read_bytes() == interpreter
    assert cache.lookup("f", "a" * 40) is not None
    assert cache.lookup("f", "b" * 40) is None  # it linked the damaged file too


def test_entries_of_another_cache_version_are_pruned_first(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "builds")
    old = tmp_path / "builds" / "f" / ("o" * 40)
    (old / "tree").mkdir(parents=True)
    (old / "tree" / "python").write_bytes(b"old" * 10_000)
    (old / "build.json").write_text(json.dumps({"version": 2, "sha": "o" * 40}))
    tree = _tree(tmp_path / "tree", interpreter=b"#!/bin/sh\n", library=b"x = 1\n")
    cache.store(fingerprint="f", sha="n" * 40, description="d", interpreter="python", tree=tree)
    assert [b.sha[0] for b in cache.entries()] == ["n"]  # the old one is not used
    assert not cache.has("f", "o" * 40)
    assert cache.prune(cache.total_bytes() - 1) == []  # freed enough: the new one stays
    assert not old.exists()
    assert [b.sha[0] for b in cache.entries()] == ["n"]


def test_an_interpreter_linked_from_outside_the_tree_is_kept_as_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "installed" / "python3"
    outside.parent.mkdir()
    outside.write_bytes(b"#!/bin/sh\necho outside\n")
    outside.chmod(0o755)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "python").symlink_to(outside)  # what a user's --build-cmd may leave
    cache = BuildCache(tmp_path / "builds")
    cache.store(fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=tree)
    build = cache.lookup("f", "a" * 40)
    assert build is not None
    assert (build.tree / "python").readlink() == outside


def _old_selected(source: Path, selection: Selection) -> list[str]:
    """objects._selected as it was (os.walk, a stat per folder), the oracle of the walk."""
    wants = selection.matcher()
    found = []
    for root, dirs, files in os.walk(source):
        prefix = os.path.relpath(root, source)
        prefix = "" if prefix == "." else prefix + "/"
        linked = [d for d in dirs if (Path(root) / d).is_symlink()]
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in {".git", "__pycache__"}
            and d not in linked
            and selection.may_hold(prefix + d)
        )
        for name in sorted([*files, *linked]):
            if wants(prefix + name):
                found.append(prefix + name)
    return found


def test_the_walk_selects_what_os_walk_did(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for relative in [
        "python", "Makefile", "a.o", "Lib/os.py", "Lib/b/c.py", "Lib/b/c.a", "Lib/z/deep/e.py",
        "Modules/Setup", "Modules/x.so", "Doc/index.rst", ".git/HEAD", "Lib/__pycache__/os.pyc",
        "build/lib.linux/_x.so", "Empty/Below/f.txt",
    ]:  # fmt: skip
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_text(relative)
    (tree / "Nothing" / "here").mkdir(parents=True)
    (tree / "Lib" / "linked").symlink_to(tree / "Lib" / "b")  # a link to a folder
    (tree / "Modules" / "y.so").symlink_to("x.so")
    (tree / "broken").symlink_to("nowhere")
    runtime = Selection(include=("python", *RUNTIME_FILES), exclude=RUNTIME_SKIPPED)
    for selection in (EVERYTHING, runtime, Selection(include=("Lib/*", "python"))):
        assert _selected(str(tree), selection) == _old_selected(tree, selection)
    assert "Lib/linked" in _selected(str(tree), EVERYTHING)


def test_a_store_built_ahead_stops_when_no_longer_wanted(tmp_path: Path) -> None:
    """A cancelled build ahead stops between files (no kill ends our own Python work),
    leaving neither the build nor a half-made tree; elsewhere the cancel changes nothing."""
    cache = BuildCache(tmp_path / "builds")
    tree = _tree(tmp_path / "t", interpreter=b"#!", library=b"x")
    cancel = threading.Event()
    cancel.set()
    outcome: list[str] = []

    def store_ahead() -> None:
        with proc.in_background(cancel):
            try:
                cache.store(
                    fingerprint="f", sha="a" * 40, description="d", interpreter="python",
                    tree=tree,
                )  # fmt: skip
                outcome.append("stored")
            except KeyboardInterrupt:
                outcome.append("cancelled")

    thread = threading.Thread(target=store_ahead)
    thread.start()
    thread.join()
    assert outcome == ["cancelled"]
    assert cache.lookup("f", "a" * 40) is None
    assert not [p for p in (tmp_path / "builds").rglob("*") if "tmp" in p.name]
    stored = cache.store(  # this thread has no in_background block: the event is not its
        fingerprint="f", sha="a" * 40, description="d", interpreter="python", tree=tree
    )
    assert (stored.tree / "python").read_bytes() == b"#!"
