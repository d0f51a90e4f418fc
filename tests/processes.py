"""Prove a test left nothing running: every child's group, and every descendant, is gone.

The `leftovers` fixture (conftest) records each process started through `subprocess.Popen` (which
`finbisect.proc` uses) during the test; at the end it waits briefly, then fails
the test if any live process is still in one of those process groups or still
descends from the test process. Survivors are killed first, so one leak does
not spread to the next test. Small C programs for the hang tests live here too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def gone(pid: int) -> bool:
    """The process has ended (it may remain a zombie until reaped)."""
    stat = _stat(pid)
    return stat is None or stat[0] == "Z"


def survivors(groups: set[int], ancestor: int) -> list[int]:
    """Live processes in `groups` or descending from `ancestor` (not `ancestor` itself)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = stat
    found = []
    for pid, (state, _ppid, pgid) in table.items():
        if pid == ancestor or state in ("Z", "X"):
            continue
        parent, seen = pid, set()
        while parent > 1 and parent not in seen and parent != ancestor:
            seen.add(parent)
            parent = table[parent][1] if parent in table else 0
        if pgid in groups or parent == ancestor:
            found.append(pid)
    return sorted(found)


def _new(pids: list[int], before: set[int]) -> list[int]:
    return [pid for pid in pids if pid not in before]


def recording_children(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    """The `leftovers` fixture: yields the groups started; asserts none survives."""
    groups: set[int] = set()
    real = subprocess.Popen

    class Recording(real):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            with contextlib.suppress(OSError):
                if (group := os.getpgid(self.pid)) != os.getpgrp():  # ours: see descendants
                    groups.add(group)

    # Descendants from before the test are not its doing (e.g. GitPython's `git cat-file`
    # helpers, alive until their Repo is collected).
    before = set(survivors(set(), os.getpid()))
    monkeypatch.setattr(subprocess, "Popen", Recording)
    yield groups
    monkeypatch.undo()
    deadline = time.monotonic() + 5
    while (left := _new(survivors(groups, os.getpid()), before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running: {left}"


ABBA_C = r"""
#include <pthread.h>
static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;
static void *lock_a_then_b(void *arg) {
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&b);
    return arg;
}
static void *lock_b_then_a(void *arg) {
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&a);
    return arg;
}
int main(void) {
    pthread_t t1, t2;
    pthread_barrier_init(&both_hold_one, NULL, 2);
    pthread_create(&t1, NULL, lock_a_then_b, NULL);
    pthread_create(&t2, NULL, lock_b_then_a, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}
"""

# A thread waits on a condition nobody signals; main joins it.
JOIN_COND_C = r"""
#include <pthread.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int flag;
static void *wait_forever(void *arg) {
    pthread_mutex_lock(&m);
    while (!flag)
        pthread_cond_wait(&never, &m);
    pthread_mutex_unlock(&m);
    return arg;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, wait_forever, NULL);
    pthread_join(t, NULL);
    return 0;
}
"""

# The child reads a pipe whose only writer is its parent, which waits for the child.
PIPE_CHILD_C = r"""
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int fds[2];
    char c;
    if (pipe(fds) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(fds[1]);
        return read(fds[0], &c, 1) == 1 ? 0 : 3;
    }
    close(fds[0]);
    waitpid(child, NULL, 0);
    return 0;
}
"""

SLEEP_C = r"""
#include <unistd.h>
int main(void) { sleep(5); return 0; }
"""

# main joins (untimed) a thread in one long timed wait: may end by itself.
TIMED_WAIT_C = r"""
#include <pthread.h>
#include <time.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static void *wait_three_seconds(void *arg) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    pthread_mutex_lock(&m);
    while (pthread_cond_timedwait(&never, &m, &until) == 0)
        ;
    pthread_mutex_unlock(&m);
    return arg;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, wait_three_seconds, NULL);
    pthread_join(t, NULL);
    return 0;
}
"""

BUSY_C = r"""
int main(void) { volatile unsigned long n = 0; for (;;) n++; }
"""

# Reads one byte from the pipe named by argv[1] (a /proc/PID/fd/N path).
READ_PATH_C = r"""
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char c;
    int fd = argc > 1 ? open(argv[1], O_RDONLY) : -1;
    return fd >= 0 && read(fd, &c, 1) == 1 ? 0 : 3;
}
"""

# Dereferences NULL in a named function, for a crash's stacks.
CRASH_C = r"""
#include <stddef.h>
int crash_here(volatile int *p) { return *p; }
int main(void) { return crash_here(NULL); }
"""


def compile_c(source: str, directory: Path, name: str) -> Path:
    """Compile `source` with debug info; skips the test when there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    src = directory / f"{name}.c"
    src.write_text(source)
    exe = directory / name
    subprocess.run(
        [cc, "-g", "-O0", "-pthread", "-o", str(exe), str(src)],
        check=True,
        capture_output=True,
    )
    return exe
