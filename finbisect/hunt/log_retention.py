"""Old hunts' logs go once all logs outgrow their share of --cache-size.

Every hunt keeps its run and build logs in `<cache>/repos/<repo>/hunts/<id>/`
and every compare in `<cache>/repos/<repo>/compares/<id>/`. Each log is
bounded (runs/capture.py) but a long noisy hunt writes hundreds, and months
of hunts add up. After each hunt or compare the oldest ended ones lose their
logs until the rest fit: a hunt keeps its `state.json` (so `finbisect runs`
and `finbisect log` still list and replay it) and gets a `logs-pruned` note;
a compare has nothing else and goes whole. Hunts that can still be resumed
(running, interrupted), the one just finished, and compares written to in the
last hour (one may be running in another cache entry) keep theirs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from finbisect.build.cache import RECENT_USE_SECONDS, disk_usage
from finbisect.hunt.state import STATE_FILE

__all__ = ["PRUNED_NOTE", "LogFolder", "log_folders", "prune_logs"]

PRUNED_NOTE = "logs-pruned"
_RESUMABLE = ("running", "interrupted")


@dataclass(frozen=True)
class LogFolder:
    path: Path
    size: int  # bytes of logs, state.json not counted
    is_hunt: bool


def log_folders(cache_dir: Path) -> list[LogFolder]:
    """Every hunt's and compare's folder with its logs' size, oldest first."""
    folders = [
        *(p for p in cache_dir.glob("repos/*/hunts/*") if p.is_dir()),
        *(p for p in cache_dir.glob("repos/*/compares/*") if p.is_dir()),
    ]
    return [
        LogFolder(path=path, size=_logs_size(path), is_hunt=path.parent.name == "hunts")
        for path in sorted(folders, key=lambda p: p.name)  # ids are UTC timestamps
    ]


def _logs(folder: Path) -> Iterator[Path]:
    """What a hunt's or compare's folder holds but its state and our note: its logs."""
    return (child for child in folder.iterdir() if child.name not in (STATE_FILE, PRUNED_NOTE))


def _logs_size(folder: Path) -> int:
    total = 0
    for child in _logs(folder):
        with contextlib.suppress(OSError):
            is_tree = child.is_dir() and not child.is_symlink()
            total += disk_usage(child) if is_tree else child.lstat().st_blocks * 512
    return total


def _in_use(folder: LogFolder) -> bool:
    """Still wanted: a hunt that can be resumed, or a compare that may be running."""
    if not folder.is_hunt:
        try:
            return time.time() - folder.path.stat().st_mtime < RECENT_USE_SECONDS
        except OSError:
            return False
    try:
        status = json.loads((folder.path / STATE_FILE).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return False  # no readable state: nothing could resume it
    return status in _RESUMABLE


def _drop_logs(folder: LogFolder) -> None:
    if not folder.is_hunt:
        shutil.rmtree(folder.path, ignore_errors=True)
        return
    for child in _logs(folder.path):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (folder.path / PRUNED_NOTE).write_text(
            f"logs removed {time.strftime('%Y-%m-%d %H:%M')} to keep within --cache-size\n"
        )


def prune_logs(cache_dir: Path, max_bytes: int, *, keep: Path | None = None) -> list[LogFolder]:
    """Drop the oldest ended hunts' and compares' logs until all fit in `max_bytes`."""
    folders = log_folders(cache_dir)
    total = sum(f.size for f in folders)
    dropped = []
    for folder in folders:
        if total <= max_bytes:
            break
        if folder.size == 0 or folder.path == keep or _in_use(folder):
            continue
        _drop_logs(folder)
        total -= folder.size
        dropped.append(folder)
    return dropped
