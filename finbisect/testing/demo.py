"""`finbisect demo`: the real pipeline on a generated "minipy" history.

Nothing here is special-cased: the demo generates a repository and a repro,
then builds the same HuntOptions that `finbisect run` would, so what it shows
is what `run` does.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

from finbisect.errors import UsageError
from finbisect.hunt.options import HuntOptions
from finbisect.testing.histories import AUTHORS, GeneratedHistory, history_of
from finbisect.testing.minipy import NOTES, HistoryBuilder

__all__ = ["DEMO_REPRO", "demo_history", "demo_options", "demo_workspace"]

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
        build_cmd="make",
        build_timeout=60.0,
        match=r"pthread_mutex_destroy\(gil_mutex\) failed",
        timeout=10.0,
        cache_dir=where / "cache",
    )


# The demo's mainline, oldest first: (subject, author index, knobs). Index 0 is
# the initial import; "bpo-9901" is the culprit (about 2/3 in); the side
# branch forks after "Issue #9411" and merges back at "Merge branch 'doc-gil'".
_BREAK = {"BROKEN_BUILD": 1}
_MEND = {"BROKEN_BUILD": 0}
_NONE: dict[str, int] = {}
_DEMO_MAIN: tuple[tuple[str, int, dict[str, int]], ...] = (
    ("Initial import of minipy, a CPython look-alike", 0, _NONE),
    ("Issue #7946: Introduce the new GIL implementation", 1, _NONE),
    ("Issue #7946: Add sys.setswitchinterval() and sys.getswitchinterval()", 1, _NONE),
    ("Issue #8063: Call _PyGILState_Init() earlier in Py_Initialize()", 2, _NONE),
    ("Fix a typo in the threading documentation", 3, _NONE),
    ("Issue #8193: Fix a reference leak in _thread.start_new_thread()", 2, _NONE),
    ("Issue #7946: Remove the old ticks-based GIL", 1, _NONE),
    ("Issue #8299: Improve GIL switching on multi-core machines", 1, _NONE),
    ("Issue #8410: Fix a crash in PyThread_acquire_lock_timed() on macOS", 4, _NONE),
    ("Issue #8604: Add a forced-switching flag to drop_gil()", 1, _NONE),
    ("Issue #8844: Make lock acquisitions interruptible by signals", 5, _BREAK),
    ("Issue #8844: Fix the build on platforms without sem_timedwait()", 5, _MEND),
    ("Issue #9090: Retry accept() on EINTR in the socket module", 3, _NONE),
    ("Update the copyright year", 0, _NONE),
    ("Issue #9182: Document the FORCE_SWITCHING macro in ceval_gil.h", 6, _NONE),
    ("Issue #9317: Fix a race in PyEval_ReInitThreads() after fork()", 2, _NONE),
    ("Issue #9411: Allow specifying an encoding for site.py", 4, _NONE),
    # -- the side branch "doc-gil" forks here --
    ("Issue #9425: Make the import machinery work with unicode paths", 3, _NONE),
    ("Issue #9512: Fix a memory leak in the ssl module", 5, _NONE),
    ("Issue #9566: Fix compiler warnings on Windows x64", 2, _NONE),
    ("Merge branch 'doc-gil': document the new GIL", 6, _NONE),
    ("Issue #9603: Add os.pipe2() where available", 4, _NONE),
    ("Issue #9632: Remove sys.setfilesystemencoding()", 3, _NONE),
    ("bpo-9650: Fix strftime() with a negative year", 0, _NONE),
    ("bpo-9684: Add a new test for thread switching latency", 1, _NONE),
    ("bpo-9712: Fix tokenize on identifiers that start with non-ASCII", 5, _NONE),
    ("bpo-9725: Handle Ctrl-C in threading.Thread.join()", 2, _NONE),
    ("bpo-9741: Document the threading.main_thread() fallback", 6, _NONE),
    ("bpo-9757: Add memoryview.release()", 4, _NONE),
    ("bpo-9778: Make hash values the same type on all platforms", 3, _NONE),
    ("bpo-9792: Rename PyEval_ThreadsInitialized() internals", 1, _NONE),
    ("bpo-9807: Deprecate the --with-tsc configure flag", 0, _NONE),
    ("bpo-9822: Fix a crash in the __missing__ lookup of defaultdict", 2, _NONE),
    ("bpo-9834: Raise a better error for unbalanced parentheses", 5, _NONE),
    ("bpo-9848: Speed up threading.Lock on Linux", 1, _NONE),
    ("bpo-9858: Fix a compiler warning in _ssl.c", 4, _NONE),
    ("bpo-9867: Retry EINTR in os.waitpid()", 3, _NONE),
    ("bpo-9877: Expose sysconfig.get_makefile_filename()", 6, _NONE),
    ("bpo-9884: Fix test_threading on FreeBSD buildbots", 2, _NONE),
    ("bpo-9893: Remove the obsolete Misc/Vim/ files", 0, _NONE),
    ("bpo-9901: Destroy the GIL at exit", 1, {"EXIT_CRASH_PERCENT": 100}),
    ("bpo-9910: Add a flags argument to os.sendfile()", 5, _NONE),
    ("bpo-9918: Fix a test_gdb failure with optimized builds", 3, _NONE),
    ("bpo-9926: Wrap long lines in Python/ceval.c", 6, _NONE),
    ("bpo-9935: Speed up pickling of instances of user-defined classes", 4, _NONE),
    ("bpo-9944: Fix a typo in the Lib/test/lock_tests.py docstring", 0, _NONE),
    ("gh-10018: Switch the eval breaker to C11 atomics", 2, _BREAK),
    ("gh-10018: Fix the build with compilers without <stdatomic.h>", 2, _MEND),
    ("gh-10041: Add a test for daemon threads at shutdown", 1, _NONE),
    ("gh-10057: Document PYTHONMALLOC=debug in the dev guide", 6, _NONE),
    ("gh-10073: Fix refleaks in test_concurrent_futures", 5, _NONE),
    ("gh-10089: Use monotonic time for the GIL switch interval", 1, _NONE),
    ("gh-10102: Fix the --with-pydebug build on AIX", 3, _NONE),
    ("gh-10116: Make Py_FinalizeEx() report flush errors", 4, _NONE),
    ("gh-10130: Add threading.excepthook tests", 2, _NONE),
    ("gh-10145: Clean up Include/pythread.h", 0, _NONE),
    ("gh-10159: Fix a deadlock in logging at shutdown", 5, _NONE),
    ("gh-10172: Update the bundled libffi", 3, _NONE),
    ("gh-10186: Fix test_faulthandler when run with -X dev", 6, _NONE),
    ("gh-10199: Mention the GIL in the FAQ", 0, _NONE),
)
_DEMO_FORK_AFTER = 16
_DEMO_MERGE_AT = 20
_DEMO_SIDE: tuple[str, ...] = (
    "Doc: Explain the switch interval in the threading HOWTO",
    "Doc: Describe the GIL in the C API reference",
    "Doc: Fix markup in the GIL section",
)
_DEMO_BODIES: Mapping[str, str] = MappingProxyType(
    {
        "Issue #7946: Introduce the new GIL implementation": (
            "The new GIL uses a condition variable and a fixed switch interval\n"
            "instead of counting bytecode ticks."
        ),
        "bpo-9901: Destroy the GIL at exit": (
            "Py_Finalize() now destroys the GIL mutex and condition variables so\n"
            "that embedders can call Py_Initialize() again.\n\n"
            "See https://bugs.python.org/issue9901 for the discussion."
        ),
    }
)


def demo_history(path: Path, *, flaky: bool = False) -> GeneratedHistory:
    """The demo: 60 mainline commits telling the GIL story, plus a merged doc branch.

    ``bpo-9901: Destroy the GIL at exit`` (about 2/3 in) makes every exit abort with
    ``pthread_mutex_destroy(gil_mutex) failed`` (with ``flaky``: about 30% of runs).
    Two revisions do not build; good = the first commit, bad = the last.
    """
    builder = HistoryBuilder(path)
    shas: list[str] = []
    broken: list[str] = []
    for index, (subject, author, step_knobs) in enumerate(_DEMO_MAIN):
        knobs = step_knobs
        if index == _DEMO_MERGE_AT:
            shas.append(builder.merge("doc-gil", subject, author=AUTHORS[author]))
            continue
        if flaky and "EXIT_CRASH_PERCENT" in knobs:
            knobs = {"EXIT_CRASH_PERCENT": 30}
        body = _DEMO_BODIES.get(subject, "")
        shas.append(builder.commit_knobs(subject, knobs, body=body, author=AUTHORS[author]))
        if knobs == _BREAK:
            broken.append(shas[-1])
        if index == _DEMO_FORK_AFTER:
            builder.branch("doc-gil")
            for number, side_subject in enumerate(_DEMO_SIDE):
                builder.commit(side_subject, author=AUTHORS[6 - number], touch=NOTES)
            builder.switch("main")
    builder.tag("v3.2.0a1", shas[_DEMO_FORK_AFTER])
    culprit = next(sha for sha, step in zip(shas, _DEMO_MAIN, strict=True) if "9901" in step[0])
    return history_of(builder, good=shas[0], bad=shas[-1], culprit=culprit, broken=broken)
