"""Built interpreters kept per (commit, build configuration), least recently used out.

A cached build keeps what running the interpreter needs from the build tree
right after a successful build: the builder says which files (a `Selection`:
CPython's runtime files, or for a user's --build-cmd everything but `.git`,
object files and static archives), laid out as in the build directory, so the
interpreter runs from it as from there, wherever the cache is moved. Each
distinct file is stored once (objects.py) and hard-linked into every build
holding it, read-only; a build's size is the bytes only it holds, and the
cache's total counts shared files once. Failed builds are
remembered too (without a tree), so a second hunt over the same range
compiles nothing; failures that may be transient (timeouts, signals) are not.
The interpreter's size and hash are recorded, and a copy that no longer
matches them is discarded (and rebuilt) instead of trusted.

Builds in use by a live hunt are never evicted, not even by `cache clear`:
a hunt lists the builds it uses beside its lock (`repos/<repo>/builds-in-use`),
and a held lock marks the list as live.

Layout: `<cache>/builds/<fingerprint>/<sha>/{build.json,tree/}` and
`<cache>/builds/objects/`. Builds are shared between repositories: the same
commit builds the same interpreter. Entries of another cache version are never
used, and are the first to go when pruning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

from finbisect.build.objects import EVERYTHING, ObjectStore, Selection, own_bytes, unique_bytes

__all__ = [
    "CCACHE_DEFAULT_BYTES",
    "RECENT_USE_SECONDS",
    "BuildCache",
    "CacheShares",
    "CachedBuild",
    "Selection",
    "disk_usage",
    "forget_in_use",
    "format_size",
    "parse_size",
    "record_in_use",
    "split_cache_size",
]

_META = "build.json"
_META_VERSION = 3  # 2: the interpreter's size and hash; 3: selected files, shared objects
_OBJECTS = "objects"
_IN_USE = "builds-in-use"  # beside a hunt's lock: the builds it runs
_STALE_STAGING_SECONDS = 3600.0
CCACHE_SHARE = 0.25  # of --cache-size: ccache's objects
LOGS_SHARE = 0.05  # of --cache-size: hunts' and compares' logs; the rest is builds
CCACHE_DEFAULT_BYTES = 5 * 1024**3


class CacheShares(NamedTuple):
    """How --cache-size is shared out, in bytes."""

    builds: int
    ccache: int
    logs: int


def split_cache_size(total: int) -> CacheShares:
    ccache, logs = int(total * CCACHE_SHARE), int(total * LOGS_SHARE)
    return CacheShares(builds=total - ccache - logs, ccache=ccache, logs=logs)


@dataclass(frozen=True, kw_only=True)
class CachedBuild:
    sha: str
    fingerprint: str
    description: str  # the build configuration, for people ("pydebug", "make")
    interpreter: str  # relative to the tree
    ok: bool
    reason: str = ""  # why it failed, when not ok
    error_lines: tuple[str, ...] = ()
    size: int = 0  # bytes on disk only this build holds (entries() counts them afresh)
    created: float = 0.0
    interpreter_size: int = 0
    interpreter_sha256: str = ""
    path: Path = Path()  # the entry directory

    @property
    def tree(self) -> Path:
        return self.path / "tree"

    @property
    def last_used(self) -> float:
        try:
            return (self.path / _META).stat().st_mtime
        except OSError:
            return 0.0


# A hunt's automatic pruning spares builds used this recently: another hunt sharing
# the cache may be running one (the bound may be exceeded for that long).
RECENT_USE_SECONDS = 3600.0


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = ObjectStore(root / _OBJECTS)

    @property
    def ccache_dir(self) -> Path:
        """ccache's objects, beside the builds and within --cache-size."""
        return self.root.parent / "ccache"

    def _entry(self, fingerprint: str, sha: str) -> Path:
        return self.root / fingerprint / sha

    def has(self, fingerprint: str, sha: str) -> bool:
        """Is there a build (successful or not) for `sha`? Does not count as a use."""
        return _read(self._entry(fingerprint, sha)) is not None

    def lookup(self, fingerprint: str, sha: str) -> CachedBuild | None:
        """The cached build, marked as just used; None if absent, unreadable or damaged
        (a damaged entry is removed, so the revision is built again)."""
        build = _read(self._entry(fingerprint, sha))
        if build is None:
            return None
        if build.ok and not _intact(build):
            self.objects.forget(build.interpreter_sha256)  # shared no more: others check theirs
            self.discard(build)
            return None
        with contextlib.suppress(OSError):
            os.utime(build.path / _META)  # least recently *used*, not created
        return build

    def discard(self, build: CachedBuild) -> None:
        """Forget one build (damaged, or no longer trusted)."""
        shutil.rmtree(build.path, ignore_errors=True)
        self.objects.sweep()

    def store(
        self,
        *,
        fingerprint: str,
        sha: str,
        description: str,
        interpreter: str,
        tree: Path | None,
        selection: Selection = EVERYTHING,
        reason: str = "",
        error_lines: tuple[str, ...] = (),
    ) -> CachedBuild:
        """Store `selection` of `tree` (None for a failed build) in the cache; atomic
        per entry. The build's `size` is the bytes this store added.

        Raises OSError (a full disk, say) with nothing left behind.
        """
        final = self._entry(fingerprint, sha)
        staging = final.with_name(f".{sha}.{os.getpid()}.tmp")
        try:
            self._remove_stale_staging(final.parent)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            size, interpreter_size, interpreter_sha256 = 0, 0, ""
            if tree is not None:
                stored = self.objects.link_tree(tree, staging / "tree", selection)
                size = stored.added
                kept = staging / "tree" / interpreter
                if interpreter in stored.digests:  # (hashed already)
                    interpreter_size = kept.stat().st_size
                    interpreter_sha256 = stored.digests[interpreter]
                else:  # a link out of the tree, kept as a link
                    interpreter_size, interpreter_sha256 = _fingerprint_file(kept)
            build = CachedBuild(
                sha=sha,
                fingerprint=fingerprint,
                description=description,
                interpreter=interpreter,
                ok=tree is not None,
                reason=reason,
                error_lines=error_lines,
                size=size,
                created=time.time(),
                interpreter_size=interpreter_size,
                interpreter_sha256=interpreter_sha256,
                path=final,
            )
            meta = {k: v for k, v in asdict(build).items() if k not in ("path", "size")}
            (staging / _META).write_text(json.dumps({"version": _META_VERSION, **meta}, indent=1))
            theirs = _read(final)  # another process stored the same build meanwhile?
            if theirs is None or theirs.ok != build.ok:
                shutil.rmtree(final, ignore_errors=True)  # (damaged, or the other outcome)
                try:
                    staging.rename(final)
                    return build
                except OSError as exc:  # stored meanwhile: two workers of one machine
                    theirs = _read(final)
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or theirs is None:
                        raise
            shutil.rmtree(staging, ignore_errors=True)  # theirs is as good as ours: kept
            return theirs
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # a full disk leaves no half copy
            self.objects.sweep()  # nor objects only it held
            raise
        except KeyboardInterrupt:  # a build ahead cancelled (or Ctrl-C): no half tree; the
            shutil.rmtree(staging, ignore_errors=True)  # few objects it alone held wait
            raise  # for the next prune's sweep (the loop is waiting for this thread)

    def entries(self) -> list[CachedBuild]:
        """Every cached build, most recently used first, with the bytes it alone holds."""
        return [replace(build, size=own_bytes(build.path)) for build in self._builds()]

    def _builds(self) -> list[CachedBuild]:
        """Every cached build, most recently used first (sizes not counted)."""
        found = [
            build
            for meta in self.root.glob(f"*/*/{_META}")
            if (build := _read(meta.parent)) is not None
        ]
        return sorted(found, key=lambda b: b.last_used, reverse=True)

    def total_bytes(self) -> int:
        """The builds' bytes on disk, each shared file once (outdated entries included)."""
        return unique_bytes(self.root)

    def outdated(self) -> list[Path]:
        """Entries another version of the cache wrote: never used, pruned first."""
        metas = self.root.glob(f"*/*/{_META}")
        return [meta.parent for meta in metas if _read(meta.parent) is None]

    def prune(
        self, max_bytes: int, *, keep: Iterable[Path] = (), spare_used_within: float = 0
    ) -> list[CachedBuild]:
        """Remove least recently used builds until the cache fits in `max_bytes`.

        Builds holding any path in `keep` (e.g. interpreters in use) stay, and so
        do builds used less than `spare_used_within` seconds ago: another hunt
        sharing this cache may be running one right now.
        """
        kept = [*keep, *self.in_use_by_live_hunts()]
        recent = time.time() - spare_used_within
        for entry in self.outdated():
            if not any(entry in path.parents for path in kept):
                shutil.rmtree(entry, ignore_errors=True)
        self.objects.sweep()
        total = self.total_bytes()
        if total <= max_bytes:
            return []  # the usual case, at every hunt's end: no build's size is needed
        removed = []
        for build in reversed(self._builds()):  # least recently used first
            if total <= max_bytes:
                break
            if any(build.path in path.parents for path in kept) or build.last_used > recent:
                continue
            # What it alone holds now: removing others may have left it sole holder of more.
            freed = own_bytes(build.path)
            shutil.rmtree(build.path, ignore_errors=True)
            total -= freed
            removed.append(replace(build, size=freed))
        self.objects.sweep()
        return removed

    def clear(self) -> list[CachedBuild]:
        """Remove every build that no live hunt is using."""
        return self.prune(0)

    def in_use_by_live_hunts(self) -> list[Path]:
        """Interpreters that running hunts listed as theirs (their lock is held)."""
        used = []
        for listing in self.root.parent.glob(f"repos/*/{_IN_USE}"):
            if _lock_is_held(listing.with_name("lock")):
                with contextlib.suppress(OSError):
                    used += [Path(line) for line in listing.read_text().splitlines() if line]
        return used

    def _remove_stale_staging(self, folder: Path) -> None:
        """Staging copies left by stores that died (a kill, a full disk)."""
        for staging in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if time.time() - staging.stat().st_mtime > _STALE_STAGING_SECONDS:
                    shutil.rmtree(staging, ignore_errors=True)


def record_in_use(workspace_root: Path, interpreter: Path) -> None:
    """Note, beside the hunt's lock, that it runs `interpreter` (see the module docstring)."""
    with (workspace_root / _IN_USE).open("a") as listing:
        listing.write(f"{interpreter}\n")


def forget_in_use(workspace_root: Path) -> None:
    (workspace_root / _IN_USE).unlink(missing_ok=True)


def _lock_is_held(lock: Path) -> bool:
    try:
        with lock.open("r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _fingerprint_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def _intact(build: CachedBuild) -> bool:
    """The cached interpreter is the one stored: same size and hash."""
    try:
        return _fingerprint_file(build.tree / build.interpreter) == (
            build.interpreter_size,
            build.interpreter_sha256,
        )
    except OSError:
        return False


def _read(entry: Path) -> CachedBuild | None:
    try:
        meta = json.loads((entry / _META).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.pop("version", None) != _META_VERSION:
        return None  # written by another finbisect version: ignored, pruned by size
    try:
        meta["error_lines"] = tuple(meta.get("error_lines", ()))
        return CachedBuild(**meta, path=entry)
    except TypeError:
        return None


def disk_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_blocks * 512
            except OSError:
                continue
    return total


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """'10G', '500M', '1234' -> bytes. Raises ValueError."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = float(text[: len(text) - len(unit)])
    if number < 0:
        raise ValueError("negative size")
    return int(number * _UNITS[unit])


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
