"""A worker's run logs of old hunts go once they outgrow the logs' share of --cache-size.

A worker keeps each hunt's run logs in `workers/slot-N/logs/<hunt>/` and its
repro in `repros/<hunt>/`; a long noisy hunt writes hundreds of logs. When a
worker takes its first run of a hunt, the oldest other hunts lose theirs until
the rest fit, as a local hunt prunes its cache's logs (hunt/log_retention.py);
a hunt written to in the last hour is spared (another client's may be running).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from finbisect.build.cache import RECENT_USE_SECONDS, disk_usage

__all__ = ["prune_hunt_logs"]


def prune_hunt_logs(slot: Path, limit: int, current: str) -> int:
    """Old hunts' logs and repros in `slot`, oldest first, until the logs take at most
    `limit` bytes; never `current`'s. The number of hunts whose logs went."""
    try:
        hunts = [p for p in (slot / "logs").iterdir() if p.is_dir()]
    except OSError:
        return 0
    sizes = {folder: disk_usage(folder) for folder in hunts}
    total = sum(sizes.values())
    recent = time.time() - RECENT_USE_SECONDS
    pruned = 0
    for folder in sorted(hunts, key=_last_written):
        if total <= limit:
            break
        if folder.name == current or _last_written(folder) > recent:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(slot / "repros" / folder.name, ignore_errors=True)
        total -= sizes[folder]
        pruned += 1
    return pruned


def _last_written(folder: Path) -> float:
    """A folder's mtime: a new log in it updates it."""
    with contextlib.suppress(OSError):
        return folder.stat().st_mtime
    return 0.0
