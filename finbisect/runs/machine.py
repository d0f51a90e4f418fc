"""Facts about this machine for reports: pyperf's metadata, and the C compiler.

pyperf already knows how to describe a machine (CPU model, cores, kernel,
libc); we ask it through its command line, run by finbisect's process
runner, rather than collecting the same facts by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from finbisect.runs import proc

__all__ = ["machine_facts"]

_PYPERF_KEYS = {"cpu_model_name": "CPU", "cpu_count": "CPUs", "platform": "platform"}


def machine_facts() -> dict[str, str]:
    """CPU, CPU count, platform (kernel and libc) and compiler; whatever is known."""
    facts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="finbisect-machine-") as tmp:
        out = Path(tmp) / "metadata.json"
        result = proc.run(
            [sys.executable, "-m", "pyperf", "collect_metadata", "-o", str(out)],
            cwd=Path(tmp),
            timeout=60,
            log_path=Path(tmp) / "log",
        )
        if result.ok and out.is_file():
            metadata = json.loads(out.read_text()).get("metadata", {})
            facts.update(
                {label: str(metadata[k]) for k, label in _PYPERF_KEYS.items() if k in metadata}
            )
        compiler = shutil.which("cc")
        if compiler is not None:
            version = proc.run(
                [compiler, "--version"], cwd=Path(tmp), timeout=30, log_path=Path(tmp) / "cc"
            )
            lines = version.output.splitlines()
            if version.ok and len(lines) > 1:
                facts["compiler"] = lines[1].strip()  # lines[0] is proc's "+ cmd"
    return facts
