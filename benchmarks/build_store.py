"""What storing a build costs: the lean, shared store against a full copy of the tree.

    .venv/bin/python benchmarks/build_store.py TREE [TREE...] [--workdir DIR]

Each TREE is a built CPython tree (a build directory, or a cached build's
`tree/`), only read, given in the order a hunt would build them (consecutive
revisions of one configuration). As a hunt's persistent build tree does, one
source tree under --workdir becomes each revision in turn (only the files that
differ are rewritten) and is then stored with CPython's selection. Measured in
the same run: the full copy the cache used to make (everything but `.git`,
objects and archives), its size and time, and the store's time and the bytes it
added to the cache (`du`'s count: shared files once), and the CPU time of the store
(wall time on a busy machine measures the others too). Targets (issue #12):
<= 25 MB added per revision after the first, <= 0.5 s per store.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from finbisect.build.cache import BuildCache, format_size
from finbisect.build.config import BuildConfig
from finbisect.build.objects import unique_bytes

_OLD_RULE = shutil.ignore_patterns(".git", "*.o", "*.a", "__pycache__")
_RACY_SECONDS = 2.1  # the store rehashes files changed this recently (objects.py)


def _become(source: Path, revision: Path) -> int:
    """Make `source` hold `revision`'s files, rewriting only those that differ."""
    changed = 0
    for root, _dirs, files in os.walk(revision):
        for name in files:
            new = Path(root) / name
            old = source / new.relative_to(revision)
            if new.is_symlink():
                if old.is_symlink() and old.readlink() == new.readlink():
                    continue
                old.unlink(missing_ok=True)
                old.parent.mkdir(parents=True, exist_ok=True)
                old.symlink_to(new.readlink())
            elif old.is_file() and not old.is_symlink() and filecmp.cmp(new, old, shallow=False):
                continue
            else:
                old.unlink(missing_ok=True)
                old.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(new, old)
            changed += 1
    return changed


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (objcopy): on a busy machine,
    what a store costs when wall time mostly measures the others."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="finbisect-store-"))
    source, copies = work / "source", work / "copy"
    cache = BuildCache(work / "cache" / "builds")
    selection = BuildConfig(command=None, interpreter="python", jobs=1, timeout=1).stored_files
    print(f"{'revision':<12} {'files changed':>13} {'full copy':>22} {'stored, added':>22}")
    for index, tree in enumerate(args.trees):
        changed = _become(source, tree)
        time.sleep(_RACY_SECONDS)  # as after a real make: untouched files are old
        start = time.perf_counter()
        shutil.copytree(source, copies, symlinks=True, ignore=_OLD_RULE)
        copy_seconds = time.perf_counter() - start
        copy_bytes = unique_bytes(copies)
        shutil.rmtree(copies)
        before = cache.total_bytes()
        start, cpu = time.perf_counter(), _cpu_seconds()
        cache.store(
            fingerprint="benchmark", sha=f"{index:040d}", description="benchmark",
            interpreter="python", tree=source, selection=selection,
        )  # fmt: skip
        store_seconds = time.perf_counter() - start
        store_cpu = _cpu_seconds() - cpu
        added = cache.total_bytes() - before
        print(
            f"{tree.parent.name[:12] or tree.name:<12} {changed:>13} "
            f"{format_size(copy_bytes):>12} {copy_seconds:>7.2f} s "
            f"{format_size(added):>12} {store_seconds:>7.2f} s ({store_cpu:.2f} s cpu)"
            f"  ({copy_bytes / max(added, 1):.0f}x less disk, "
            f"{copy_seconds / store_seconds:.1f}x faster)"
        )
    print(f"cache: {format_size(cache.total_bytes())} for {len(args.trees)} revisions in {work}")


if __name__ == "__main__":
    main()
