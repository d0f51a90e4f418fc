"""Built interpreters kept per (commit, build configuration), least recently used out.

A cached build is a copy of the build tree right after a successful build,
minus `.git`, object files and static archives (nothing runs them), so the
interpreter runs from it as from its build directory. Failed builds are
remembered too (without a tree), so a second hunt over the same range
compiles nothing; failures that may be transient (timeouts, signals) are not.

Layout: `<cache>/builds/<fingerprint>/<sha>/{build.json,tree/}`. Builds are
shared between repositories: the same commit builds the same interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["RECENT_USE_SECONDS", "BuildCache", "CachedBuild", "format_size", "parse_size"]

_META = "build.json"
_META_VERSION = 1
_NOT_RUN = shutil.ignore_patterns(".git", "*.o", "*.a", "__pycache__")


@dataclass(frozen=True, kw_only=True)
class CachedBuild:
    sha: str
    fingerprint: str
    description: str  # the build configuration, for people ("pydebug", "make")
    interpreter: str  # relative to the tree
    ok: bool
    reason: str = ""  # why it failed, when not ok
    error_lines: tuple[str, ...] = ()
    size: int = 0  # bytes on disk
    created: float = 0.0
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

    def _entry(self, fingerprint: str, sha: str) -> Path:
        return self.root / fingerprint / sha

    def has(self, fingerprint: str, sha: str) -> bool:
        """Is there a build (successful or not) for `sha`? Does not count as a use."""
        return (self._entry(fingerprint, sha) / _META).is_file()

    def lookup(self, fingerprint: str, sha: str) -> CachedBuild | None:
        """The cached build, marked as just used; None if absent or unreadable."""
        build = _read(self._entry(fingerprint, sha))
        if build is None or (build.ok and not (build.tree / build.interpreter).is_file()):
            return None
        os.utime(build.path / _META)  # least recently *used*, not created
        return build

    def store(
        self,
        *,
        fingerprint: str,
        sha: str,
        description: str,
        interpreter: str,
        tree: Path | None,
        reason: str = "",
        error_lines: tuple[str, ...] = (),
    ) -> CachedBuild:
        """Copy `tree` (None for a failed build) into the cache; atomic per entry."""
        final = self._entry(fingerprint, sha)
        staging = final.with_name(f".{sha}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        size = 0
        if tree is not None:
            shutil.copytree(tree, staging / "tree", symlinks=True, ignore=_NOT_RUN)
            size = _disk_usage(staging / "tree")
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
            path=final,
        )
        meta = {k: v for k, v in asdict(build).items() if k != "path"}
        (staging / _META).write_text(json.dumps({"version": _META_VERSION, **meta}, indent=1))
        if final.exists():  # another hunt stored the same build meanwhile
            shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        return build

    def entries(self) -> list[CachedBuild]:
        """Every cached build, most recently used first."""
        found = [
            build
            for meta in self.root.glob(f"*/*/{_META}")
            if (build := _read(meta.parent)) is not None
        ]
        return sorted(found, key=lambda b: b.last_used, reverse=True)

    def prune(
        self, max_bytes: int, *, keep: Iterable[Path] = (), spare_used_within: float = 0
    ) -> list[CachedBuild]:
        """Remove least recently used builds until the cache fits in `max_bytes`.

        Builds holding any path in `keep` (e.g. interpreters in use) stay, and so
        do builds used less than `spare_used_within` seconds ago: another hunt
        sharing this cache may be running one right now.
        """
        kept = list(keep)
        entries = self.entries()
        total = sum(b.size for b in entries)
        removed = []
        recent = time.time() - spare_used_within
        for build in reversed(entries):  # least recently used first
            if total <= max_bytes:
                break
            if any(build.path in path.parents for path in kept) or build.last_used > recent:
                continue
            shutil.rmtree(build.path, ignore_errors=True)
            total -= build.size
            removed.append(build)
        return removed

    def clear(self) -> list[CachedBuild]:
        return self.prune(0)


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


def _disk_usage(path: Path) -> int:
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
