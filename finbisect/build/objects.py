"""The build cache's files, stored once by content and hard-linked into each build's tree.

Consecutive revisions share nearly all their files (Lib/, the built modules, the
landmarks); only the interpreter and what the commits touched differ. Each
distinct file is one object, `<objects>/<sha256[:2]>/<sha256>` (`.x` appended
for executables: same bytes, another mode), linked into every tree that holds
it and made read-only, so that no run changes what other builds share. Large
binaries are stored with their debug sections compressed (debug_sections.py):
their object is the compacted file, named by its own digest.

A file's link count says who holds it: the object's own name plus one per tree.
A tree file with at most two links is held by that tree alone; its bytes are
that build's own. An object with one link is held by no tree: `sweep` removes
it. Objects are born linked from the tree being stored (two links), so a
concurrent sweep never removes one under a store; a sweep racing a store that
links an orphan only costs that file its sharing (the tree keeps its data).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from finbisect.build import debug_sections
from finbisect.runs import proc

__all__ = ["EVERYTHING", "ObjectStore", "Selection", "Stored", "own_bytes", "unique_bytes"]

_ALWAYS_SKIPPED_DIRS = frozenset({".git", "__pycache__"})
_READ_ONLY = 0o444
_EXECUTABLE = 0o555
_RACY_NS = 2_000_000_000
_COMPACT_FROM = 4 << 20


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which files of a build tree are stored: paths relative to the tree, glob
    patterns in which `*` also matches `/` (`Lib/*` is everything under Lib);
    `exclude` patterns match file names."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ("*.o", "*.a")

    def matcher(self) -> Callable[[str], bool]:
        included = re.compile("|".join(fnmatch.translate(p) for p in self.include))
        excluded = re.compile("|".join(fnmatch.translate(p) for p in self.exclude) or "(?!)")

        def wants(relative: str) -> bool:
            name = relative.rsplit("/", 1)[-1]
            return included.match(relative) is not None and excluded.match(name) is None

        return wants

    def may_hold(self, directory: str) -> bool:
        """Can a file under `directory` be wanted? (The store skips the others: a
        CPython tree's Doc/, Objects/, build/temp.*...)"""
        inside = directory + "/"
        for pattern in self.include:
            literal = re.split(r"[*?[]", pattern, maxsplit=1)[0]
            if literal.startswith(inside) or (literal != pattern and inside.startswith(literal)):
                return True
        return False


EVERYTHING = Selection()  # what a user's --build-cmd leaves: all but objects and archives


@dataclass(frozen=True, kw_only=True)
class Stored:
    digests: dict[str, str]  # each stored file's sha256, by path relative to the tree
    added: int  # bytes on disk the store added: its files no other build holds


class ObjectStore:
    def __init__(self, root: Path, *, compact_from: int = _COMPACT_FROM) -> None:
        self.root = root
        self._root = os.fspath(root)
        # The hashes of the files stored from a build tree, by path and stat: the next
        # revision stored from the same tree reads again only what make and the checkout
        # rewrote (about 0.2 s less for a CPython tree). For this process only.
        self._hashed: dict[str, tuple[tuple[int, ...], str]] = {}
        # Files this large are stored with their debug sections compressed when they have
        # any (interpreters, libpython); the compacted object's digest and size by the
        # source's digest, so an unchanged interpreter is not compressed again.
        self.compact_from = compact_from
        self._compacted: dict[str, tuple[str, int]] = {}

    def object_path(self, digest: str, *, executable: bool) -> Path:
        return Path(self._object(digest, executable=executable))

    def _object(self, digest: str, *, executable: bool) -> str:
        return f"{self._root}/{digest[:2]}/{digest}{'.x' if executable else ''}"

    def link_tree(self, source: Path, target: Path, selection: Selection) -> Stored:
        """Store `selection` of `source` as the tree `target` (which must not exist).

        Raises OSError (a full disk, an unreadable file), or KeyboardInterrupt when built
        ahead and no longer wanted (proc.check_cancelled); the caller removes the half-made
        tree (and sweeps the objects only it held).
        """
        digests: dict[str, str] = {}
        added = 0
        made: set[str] = set()
        # Plain strings, not Paths: a tree is thousands of files, stored at every step.
        top, into = os.fspath(source), os.fspath(target)
        for relative in _selected(top, selection):
            proc.check_cancelled()  # a build ahead no longer wanted stops between files
            path, out = f"{top}/{relative}", f"{into}/{relative}"
            if (folder := os.path.dirname(out)) not in made:
                _make_folder(folder, made)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                inside = _file_inside(path, source)
                if inside is None:  # out of the tree, or a directory: kept as it is
                    os.symlink(os.readlink(path), out)
                    continue
                # Stored as the file it names (the same object: it costs nothing), which
                # need not be selected: 3.12+'s build/lib.* links to Modules/*.so.
                path, info = inside, os.stat(inside)
            digest = self._digest(path, info)
            executable = bool(info.st_mode & stat.S_IXUSR)
            compacted = None
            if info.st_size >= self.compact_from:
                compacted = self._link_compacted(path, digest, out, executable=executable)
            if compacted is None:
                stored = self._object(digest, executable=executable)
                added += self._link(path, out, stored, size=info.st_size)
            else:
                digest, bytes_added = compacted
                added += bytes_added
            digests[relative] = digest
        return Stored(digests=digests, added=added)

    def _link_compacted(
        self, path: str, digest: str, out: str, *, executable: bool
    ) -> tuple[str, int] | None:
        """`out` becomes a link to the object of `path` with its debug sections
        compressed (debug_sections.py): that object's digest and the bytes it added;
        None when `path` is kept as it is."""
        known = self._compacted.get(digest)
        if known is not None:
            kept, size = known
            stored = self._object(kept, executable=executable)
            with contextlib.suppress(OSError):
                if os.stat(stored).st_size == size:
                    os.link(stored, out)
                    return kept, 0
        if not debug_sections.compact(path, out):
            return None
        os.chmod(out, _EXECUTABLE if executable else _READ_ONLY)
        kept, size = _sha256(out), os.stat(out).st_size
        self._compacted[digest] = (kept, size)
        stored = self._object(kept, executable=executable)
        return kept, self._link(out, out, stored, size=size, written=True)

    def _digest(self, path: str, info: os.stat_result) -> str:
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        known = self._hashed.get(path)
        if known is not None and known[0] == key:
            return known[1]
        digest = _sha256(path)
        # As git does with its index: a file changed within the clock's resolution of
        # the last change may change again with the same stat; such a one is not kept.
        if time.time_ns() - info.st_ctime_ns > _RACY_NS:
            self._hashed[path] = (key, digest)
        return digest

    def _link(self, path: str, out: str, stored: str, *, size: int, written: bool = False) -> int:
        """`out` becomes a link to the object `stored`, created from `path` if new (from
        `out` itself when `written`: a file just made there); the bytes it added."""
        executable = stored.endswith(".x")
        try:
            if os.stat(stored).st_size == size:
                if written:  # replaced in one step: `out` is never missing
                    os.link(stored, out + ".link")
                    os.replace(out + ".link", out)
                else:
                    os.link(stored, out)
                return 0
            os.unlink(stored)  # damaged (its size is not its content's): replaced below
        except FileNotFoundError:
            pass
        except OSError:  # too many links (65000 on ext4), no hard links here: a copy
            return _blocks(out) if written else _copy(path, out, executable=executable)
        added = _blocks(out) if written else _copy(path, out, executable=executable)
        os.makedirs(os.path.dirname(stored), exist_ok=True)
        # A concurrent store may have created it first, or the file system has no hard
        # links: then this tree keeps its own copy (its link count says it is its own).
        with contextlib.suppress(OSError):
            os.link(out, stored)
        return added

    def forget(self, digest: str) -> None:
        """Stop sharing a damaged object: new stores make a fresh one (trees keep theirs)."""
        for executable in (False, True):
            self.object_path(digest, executable=executable).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove the objects no tree links; the bytes freed."""
        freed = 0
        for shard in _subdirectories(self.root):
            for entry in os.scandir(shard):
                with contextlib.suppress(OSError):  # a concurrent sweep may remove it first
                    info = entry.stat(follow_symlinks=False)
                    if info.st_nlink == 1:
                        Path(entry.path).unlink()
                        freed += info.st_blocks * 512
        return freed


def own_bytes(tree: Path) -> int:
    """Bytes on disk that only this tree holds: its directories, and its files with no
    link but the object's."""
    return _bytes_under(tree, lambda info: info.st_nlink <= 2)


def unique_bytes(path: Path) -> int:
    """Bytes on disk under `path`, each hard-linked file counted once (as `du` does)."""
    seen: set[tuple[int, int]] = set()

    def first_time(info: os.stat_result) -> bool:
        key = (info.st_dev, info.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True

    return _bytes_under(path, first_time)


def _bytes_under(path: Path, counts: Callable[[os.stat_result], bool]) -> int:
    """Bytes on disk under `path`: its directories, and the files `counts` accepts."""
    total = 0
    for root, _dirs, files in os.walk(path):
        with contextlib.suppress(OSError):
            total += os.lstat(root).st_blocks * 512
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(root, name))
                if counts(info):
                    total += info.st_blocks * 512
    return total


def _selected(source: str, selection: Selection) -> list[str]:
    """The wanted files' paths relative to `source`, walking only where they can be:
    each folder's files (and links to folders, kept as links) by name, then its folders."""
    wants = selection.matcher()
    found: list[str] = []

    def walk(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError:  # as os.walk: an unreadable folder holds nothing
            return
        below = []
        for entry in entries:  # d_type: no stat for a name that is no link to a folder
            if entry.is_dir(follow_symlinks=False):
                name = prefix + entry.name
                if entry.name not in _ALWAYS_SKIPPED_DIRS and selection.may_hold(name):
                    below.append(entry)
            elif wants(prefix + entry.name):
                found.append(prefix + entry.name)
        for entry in below:
            walk(entry.path, prefix + entry.name + "/")

    walk(source, "")
    return found


def _make_folder(folder: str, made: set[str]) -> None:
    """mkdir `folder`, and first its parents not `made` yet (the tree's own root included:
    files come folder by folder, so a parent is usually made already, and one mkdir does)."""
    parent = os.path.dirname(folder)
    if parent not in made and not os.path.isdir(parent):
        _make_folder(parent, made)
    os.mkdir(folder)
    made.add(folder)


def _copy(path: str, out: str, *, executable: bool) -> int:
    """A read-only copy of `path` at `out`; its bytes on disk."""
    shutil.copyfile(path, out)
    os.chmod(out, _EXECUTABLE if executable else _READ_ONLY)
    return _blocks(out)


def _blocks(path: str) -> int:
    """Bytes on disk of the file `path`."""
    return os.stat(path).st_blocks * 512


def _file_inside(link: str, tree: Path) -> str | None:
    """The regular file a symbolic link names, if it lies inside `tree`."""
    target = os.path.realpath(link)
    root = os.path.realpath(tree)
    if os.path.commonpath([target, root]) == root and os.path.isfile(target):
        return target
    return None


def _subdirectories(path: Path) -> list[str]:
    try:
        return [entry.path for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
