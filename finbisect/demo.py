"""`finbisect demo`: the real pipeline on a generated "minipy" history.

Nothing here is special-cased: the demo generates a repository and a repro,
then builds the same HuntOptions that `finbisect run` would, so what it shows
is what `run` does.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from finbisect.build import BuildConfig
from finbisect.errors import UsageError
from finbisect.minipy import demo_history
from finbisect.models import OutcomeKind
from finbisect.options import HuntOptions

__all__ = ["DEMO_REPRO", "demo_options", "demo_workspace"]

DEMO_REPRO = """\
# A daemon thread still waits for the GIL when the main thread finalizes
# the interpreter (bpo-9901). minipy runs this file, then exits.
import threading
import time

def worker():
    while True:
        time.sleep(0.001)

threading.Thread(target=worker, daemon=True).start()
time.sleep(0.01)
"""


@contextmanager
def demo_workspace(directory: Path | None) -> Iterator[Path]:
    """An empty directory for the demo: the one given, or a temporary one removed after."""
    if directory is None:
        temporary = Path(tempfile.mkdtemp(prefix="finbisect-demo-"))
        try:
            yield temporary
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"--dir {directory} is not empty; give a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    yield directory.resolve()


def demo_options(where: Path, *, flaky: bool = False) -> HuntOptions:
    """Generate the minipy history under `where` and the options that hunt it."""
    history = demo_history(where / "minipy", flaky=flaky)
    repro = where / "repro.py"
    repro.write_text(DEMO_REPRO)
    return HuntOptions(
        repro=repro,
        repo=history.path,
        good=history.good,
        bad=history.bad,
        build=BuildConfig(command="make", interpreter="python", jobs=1, timeout=60.0),
        symptoms=frozenset({OutcomeKind.CRASH, OutcomeKind.HANG}),
        match=re.compile(r"pthread_mutex_destroy\(gil_mutex\) failed"),
        timeout=10.0,
        runs=None,  # the default search of `finbisect run`
        cache_dir=where / "cache",
    )
