"""Reproducible, traceable minipy runs: two environment variables of the built ./python.

Two environment variables of the built ``./python`` serve tests (neither
changes what a run prints):

- ``MINIPY_RANDOM_STATE=FILE`` (``RANDOM_STATE_ENV``): where the per-run
  randomness (crash or not, jitter) comes from. Unset, each run seeds its
  PRNG from ``/dev/urandom``. Set, each run takes the number in ``FILE``
  (decimal; missing or empty is 0) and stores it plus one, under an
  exclusive ``fcntl`` lock so concurrent runs each take their own, and seeds
  its PRNG with splitmix64 of it: the same starting number gives the same
  sequence of runs (``write_random_state``). A ``FILE`` that cannot be used
  is an error (exit status 3), not a silent fallback. ``tests/conftest.py``
  sets it for every test, starting from a hash of the test's node id.
- ``MINIPY_TRACE=FILE`` (``TRACE_ENV``): each run appends lines
  ``EVENT PID MONOTONIC_NS [DETAIL]`` to ``FILE``: ``start`` as ``main``
  begins, ``delayed`` after the exit delay has been slept (detail: the delay
  in ms), and ``finalize`` as the exit begins (detail: ``ok``, ``crash``,
  ``hang``, ``error`` or ``unrelated-crash``). ``read_trace`` parses it;
  ``max_concurrent_runs`` says how many runs were ever under way at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RANDOM_STATE_ENV",
    "TRACE_ENV",
    "TraceEvent",
    "max_concurrent_runs",
    "read_trace",
    "write_random_state",
]

RANDOM_STATE_ENV = "MINIPY_RANDOM_STATE"
TRACE_ENV = "MINIPY_TRACE"


@dataclass(frozen=True, kw_only=True)
class TraceEvent:
    """One line of a ``MINIPY_TRACE`` file."""

    event: str  # start, delayed, finalize
    pid: int
    ns: int  # CLOCK_MONOTONIC, nanoseconds: comparable across the runs of one boot
    detail: str  # delayed: the delay in ms; finalize: how the run exits


def read_trace(path: Path) -> list[TraceEvent]:
    """The events in a ``MINIPY_TRACE`` file, in the order they were written."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        event, pid, ns, *detail = line.split(" ", 3)
        events.append(TraceEvent(event=event, pid=int(pid), ns=int(ns), detail=" ".join(detail)))
    return events


def max_concurrent_runs(events: Collection[TraceEvent]) -> int:
    """The most runs under way at one moment: from each ``start`` to its ``finalize``.

    Runs that never finalized (killed first) count until the end of the trace.
    """
    edges = []
    for e in events:
        if e.event == "start":
            edges.append((e.ns, 1))
        elif e.event == "finalize":
            edges.append((e.ns, -1))
    running = most = 0
    for _, step in sorted(edges):  # at equal times an end (-1) sorts before a start
        running += step
        most = max(most, running)
    return most


def write_random_state(path: Path, start: int) -> None:
    """Make ``path`` a ``MINIPY_RANDOM_STATE`` file whose next run takes ``start``."""
    path.write_text(f"{start % 2**64}\n", encoding="ascii")
