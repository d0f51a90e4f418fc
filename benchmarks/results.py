"""The benchmarks' JSON results: one versioned document per run (pyperf's habit)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def write_results(path: Path, fields: dict[str, Any]) -> None:
    """Write version 1, today's date and this machine's CPU count, then `fields`."""
    document = {"version": 1, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    path.write_text(json.dumps({**document, **fields}, indent=1) + "\n")
