"""Shared helpers: run the CLI in-process and read what a user would see.

Two autouse fixtures hold for every test:

- `_no_processes_left_behind`: a test that leaves a process running fails
  (an error at its teardown), and the process is killed.
- `_minipy_random_state`: the minipy programs a test runs draw their
  randomness from a counter that starts at a hash of the test's node id, so
  every `pytest` run gives each test the same random stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from finbisect.cli.app import cli
from finbisect.testing.minipy_trace import RANDOM_STATE_ENV, write_random_state
from tests.processes import recording_children

REPRO = "import threading\nthreading.Thread(target=lambda: None, daemon=True).start()\n"
GIL_MATCH = r"pthread_mutex_destroy\(gil_mutex\) failed"


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self, path: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def invoke(*args: str) -> CliResult:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def repro(tmp_path: Path) -> Path:
    path = tmp_path / "repro.py"
    path.write_text(REPRO)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


Hunt = Callable[..., CliResult]


@pytest.fixture
def hunt(repro: Path, cache: Path, tmp_path: Path) -> Hunt:
    """`finbisect run` with minipy's build; keyword args become extra options."""

    def run(repo: Path, good: str, bad: str, *extra: str) -> CliResult:
        return invoke(
            "run", str(repro), "--repo", str(repo), "--good", good, "--bad", bad,
            "--build-cmd", "make", "--interpreter", "python", "--cache-dir", str(cache),
            "--json", str(tmp_path / "out.json"), *extra,
        )  # fmt: skip

    return run


@pytest.fixture
def leftovers(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    """Fails the test if a process it started (or a descendant) is still running at its end."""
    yield from recording_children(monkeypatch)


# --- no process outlives its test -------------------------------------------------------

TEST_MARK_ENV = "FINBISECT_TEST_MARK"
_STRAGGLER_SECONDS = 2.0  # a process killed just before the test ended may need a moment


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    command: str

    def describe(self) -> str:
        return (
            f"pid {self.pid} (ppid {self.ppid}, pgid {self.pgid}, sid {self.sid}, "
            f"state {self.state}): {self.command}"
        )


def _proc(pid: int) -> _Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    name, _, rest = stat.partition(" (")[2].rpartition(") ")
    state, ppid, pgid, sid = rest.split()[:4]
    command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or f"[{name}]"
    return _Proc(int(pid), int(ppid), int(pgid), int(sid), state, command)


def _live_processes() -> dict[int, _Proc]:
    """Every process on the machine that is still running (zombies are finished)."""
    found = {}
    for entry in Path("/proc").iterdir():
        p = _proc(int(entry.name)) if entry.name.isdigit() else None
        if p is not None and p.state not in ("Z", "X"):
            found[p.pid] = p
    return found


def _descendants(root: int, procs: dict[int, _Proc]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _carries_mark(pid: int, mark: bytes) -> bool:
    """Whether `pid` was started with our marker in its environment (inherited at exec)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return False
    return mark in environ.split(b"\0")


def _started_by_this_test(mark: bytes, before: set[int]) -> dict[int, _Proc]:
    """Live processes the test started: our new descendants, and anything with its marker.

    The marker catches what escaped the process tree: a child that called
    setsid() and was reparented to init when its parent died.
    """
    procs = _live_processes()
    me = os.getpid()
    ours = (_descendants(me, procs) - before) | {
        pid for pid in procs if pid != me and _carries_mark(pid, mark)
    }
    return {pid: procs[pid] for pid in ours if pid in procs}


@pytest.fixture(autouse=True)
def _no_processes_left_behind(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail the test if any process it started is still running once it is over.

    Every child inherits FINBISECT_TEST_MARK=<pytest pid>-<hash of the node id>
    (unless a test builds an environment from nothing: those are still caught
    while they descend from pytest). After the test and its other fixtures,
    stragglers get a couple of seconds; whatever is left is listed, killed
    (so later tests do not suffer), and the test errors at teardown.
    """
    node = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    value = f"{os.getpid()}-{node}"
    monkeypatch.setenv(TEST_MARK_ENV, value)
    mark = f"{TEST_MARK_ENV}={value}".encode()
    before = _descendants(os.getpid(), _live_processes())
    yield
    deadline = time.monotonic() + _STRAGGLER_SECONDS
    while (left := _started_by_this_test(mark, before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not left:
        return
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    listing = "\n  ".join(p.describe() for p in sorted(left.values(), key=lambda p: p.pid))
    pytest.fail(
        f"{len(left)} process(es) started by this test still running "
        f"{_STRAGGLER_SECONDS:g} s after it ended (now killed):\n  {listing}",
        pytrace=False,
    )


# --- the same minipy randomness on every run --------------------------------------------


@pytest.fixture(autouse=True)
def _minipy_random_state(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MINIPY_RANDOM_STATE for this test: a counter starting at a hash of its node id."""
    path = tmp_path_factory.mktemp("minipy-random") / "state"
    digest = hashlib.sha256(request.node.nodeid.encode()).digest()
    write_random_state(path, int.from_bytes(digest[:8], "big"))
    monkeypatch.setenv(RANDOM_STATE_ENV, str(path))
