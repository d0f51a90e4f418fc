"""Read a process group's threads from /proc, and watch it for a deadlock.

`DeadlockWatch` is `proc.run`'s `watch` hook: polled every quarter second, it
samples the group (the leader's descendants, found through /proc's `children`
lists, so a member that called setsid is still seen) and lets `deadlock` judge.
Only when every thread has looked stuck for the whole grace does it scan every
process (who else holds the pipes, which children exist) to confirm. Anything
unreadable makes a sample "not stuck": the timeout stays the backstop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from finbisect.runs.deadlock import (
    Arch,
    FdQuery,
    ProcessSample,
    Stillness,
    Surroundings,
    ThreadSample,
    deadlock_reason,
    fd_query,
    shared_futex_address,
    stuck_waits,
    why_not_deadlocked,
)

__all__ = ["DeadlockWatch", "group_pids", "machine_arch", "read_process", "supported"]

_PROC = Path("/proc")
_ELF_MACHINES = {62: Arch.X86_64, 183: Arch.AARCH64}
_TIMER_SIGNALS = (14, 26, 27)  # SIGALRM, SIGVTALRM, SIGPROF
_MAX_FDS = 1024  # fds read from a poll/select argument, at most
_BLOCKED_SECONDS = 0.2  # every thread in an untimed wait this long: `blocked` (a probable hang)


def machine_arch() -> Arch | None:
    machine = platform.machine().lower()
    return {"x86_64": Arch.X86_64, "amd64": Arch.X86_64, "aarch64": Arch.AARCH64}.get(
        machine, Arch.AARCH64 if machine == "arm64" else None
    )


@functools.cache
def supported() -> bool:
    """Whether this system shows what deadlock detection needs (else: the timeout alone)."""
    if machine_arch() is None:
        return False
    try:
        (_PROC / "self" / "syscall").read_text()
    except OSError:
        return False
    return True


class DeadlockWatch:
    """`proc.run`'s watch: the reason once the group deadlocked for `grace` seconds."""

    def __init__(
        self,
        grace: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        blocked: threading.Event | None = None,
    ) -> None:
        self.grace = grace
        self.blocked = blocked  # set once every thread has sat in an untimed wait a moment
        self._clock = clock
        self._still = Stillness()
        self._checked = -1  # the stillness generation last refused by the full check
        self._extra: frozenset[int] = frozenset()  # members the children lists miss
        self.refusal = ""  # why the last full check said "not deadlocked" (for tests, logs)

    def __call__(self, leader: int) -> str | None:
        try:
            return self._poll(leader)
        except (OSError, ValueError, IndexError, struct.error):  # a process came or went
            self._still.reset()
            return None

    def _poll(self, leader: int) -> str | None:
        pids = [*_descendants(leader), *sorted(self._extra)]
        processes = [p for p in map(read_process, dict.fromkeys(pids)) if p is not None]
        waits = stuck_waits(processes)
        if waits is None:
            self._still.reset()
            return None
        still = self._still.observe(processes, self._clock())
        if self.blocked is not None and still >= min(_BLOCKED_SECONDS, self.grace):
            self.blocked.set()
        if still < self.grace:
            return None
        if self._checked == self._still.generation:
            return None  # refused already, and nothing moved since
        pipes = {pipe for wait in waits.values() for pipe in wait.endpoints}
        around = surroundings(leader, pipes)
        self._extra = around.members - {p.pid for p in processes}
        why = why_not_deadlocked(processes, waits, around)
        if why is not None:
            self.refusal = why
            self._checked = self._still.generation
            return None
        return deadlock_reason(processes, self.grace)


def group_pids(leader: int) -> tuple[int, ...]:
    """The live processes of the leader's group and its descendants, leader first."""
    try:
        members = surroundings(leader, set()).members
    except OSError:
        return (leader,)
    return (leader, *sorted(members - {leader}))


def read_process(pid: int) -> ProcessSample | None:
    """One process and its threads; None when it is gone."""
    base = _PROC / str(pid)
    try:
        fields = _stat_fields(base / "stat")
        arch = _elf_arch(base / "exe")
        tids = sorted(int(t.name) for t in (base / "task").iterdir() if t.name.isdigit())
    except (OSError, ValueError):
        return None
    maps: list[tuple[int, int, bool]] | None = None
    threads = []
    for tid in tids:
        thread = _read_thread(base, tid, arch)
        if thread is None:
            continue
        if thread.syscall is not None and (addr := shared_futex_address(arch, thread.syscall)):
            maps = _maps(base) if maps is None else maps
            private = any(lo <= addr < hi and not shared for lo, hi, shared in maps)
            thread = dataclasses.replace(thread, private_futex=private)
        threads.append(thread)
    return ProcessSample(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        state=fields[0],
        arch=arch,
        threads=tuple(threads),
        timers=_timers(base),
    )


def _read_thread(base: Path, tid: int, arch: Arch | None) -> ThreadSample | None:
    task = base / "task" / str(tid)
    try:
        fields = _stat_fields(task / "stat")
        syscall = _syscall((task / "syscall").read_text())
    except (OSError, ValueError):
        return None
    cpu: tuple[int, ...] = (int(fields[11]) + int(fields[12]),)
    with contextlib.suppress(OSError, ValueError):
        cpu += tuple(int(v) for v in (task / "schedstat").read_text().split())
    waited = None
    query = fd_query(arch, syscall)
    if query is not None:
        waited = _waited(base, query)
    return ThreadSample(tid=tid, state=fields[0], cpu=cpu, syscall=syscall, waited=waited)


def _stat_fields(path: Path) -> list[str]:
    """stat's fields after the parenthesised command: state ppid pgrp session ..."""
    return path.read_text().rsplit(")", 1)[1].split()


def _syscall(text: str) -> tuple[int, ...] | None:
    """'202 0x55d3 0x189 0x0 0x0 0x0 0xffffffff sp pc' -> (202, 0x55d3, ...); None otherwise."""
    parts = text.split()
    if len(parts) < 7 or parts[0] in ("running", "-1"):
        return None
    return (int(parts[0]), *(int(p, 16) for p in parts[1:7]))


def _elf_arch(exe: Path) -> Arch | None:
    with exe.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None  # not a 64-bit little-endian ELF: a compat task's numbers differ
    return _ELF_MACHINES.get(int.from_bytes(header[18:20], "little"))


def _timers(base: Path) -> bool:
    caught = 0
    with contextlib.suppress(OSError, ValueError):
        for line in (base / "status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                caught = int(line.split()[1], 16)
    if any(caught & (1 << (sig - 1)) for sig in _TIMER_SIGNALS):
        return True
    try:
        return bool((base / "timers").read_text().strip())
    except OSError:  # kernels without CONFIG_CHECKPOINT_RESTORE: POSIX timers unseen
        return False


def _maps(base: Path) -> list[tuple[int, int, bool]]:
    """(start, end, shared) of each mapping."""
    spans = []
    for line in (base / "maps").read_text().splitlines():
        parts = line.split(maxsplit=2)
        lo, hi = parts[0].split("-")
        spans.append((int(lo, 16), int(hi, 16), parts[1][3:4] == "s"))
    return spans


def _waited(base: Path, query: FdQuery) -> tuple[str, ...] | None:
    """The targets of the fds a wait waits on; None when they cannot be read."""
    try:
        fds = list(query.fds)
        if query.pollfds is not None:
            address, count = query.pollfds
            data = _memory(base, address, min(count, _MAX_FDS) * 8)
            fds += [fd for fd, _, _ in struct.iter_unpack("<ihh", data) if fd >= 0]
        if query.fdsets is not None:
            nfds, addresses = query.fdsets
            size = (min(nfds, _MAX_FDS) + 63) // 64 * 8
            for address in addresses:
                if address:
                    bits = int.from_bytes(_memory(base, address, size), "little")
                    fds += [fd for fd in range(min(nfds, _MAX_FDS)) if bits >> fd & 1]
        if query.epoll is not None:
            info = (base / "fdinfo" / str(query.epoll)).read_text()
            fds += [int(line.split()[1]) for line in info.splitlines() if line.startswith("tfd:")]
        return tuple(str((base / "fd" / str(fd)).readlink()) for fd in dict.fromkeys(fds))
    except (OSError, ValueError, struct.error):
        return None


def _memory(base: Path, address: int, size: int) -> bytes:
    fd = os.open(base / "mem", os.O_RDONLY)
    try:
        data = os.pread(fd, size, address)
    finally:
        os.close(fd)
    if len(data) != size:
        raise ValueError("short read")
    return data


def _descendants(leader: int) -> list[int]:
    """The leader and every descendant, through /proc's children lists (setsid or not)."""
    found, queue = [leader], [leader]
    while queue:
        pid = queue.pop()
        try:
            tasks = list((_PROC / str(pid) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):
                for child in map(int, (task / "children").read_text().split()):
                    if child not in found:
                        found.append(child)
                        queue.append(child)
    return found


def surroundings(leader: int, pipes: Iterable[str]) -> Surroundings:
    """Scan every process: the group's members, their children, who holds `pipes`."""
    wanted = set(pipes)
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    states: dict[int, str] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = _stat_fields(entry / "stat")
                pid = int(entry.name)
                states[pid], parents[pid], groups[pid] = fields[0], int(fields[1]), int(fields[2])
    members = frozenset(
        pid
        for pid in states
        if states[pid] not in ("Z", "X")
        and (groups[pid] == leader or _descends(pid, leader, parents))
    )
    children: dict[int, list[tuple[int, str]]] = {}
    for pid, parent in parents.items():
        if parent in members:
            children.setdefault(parent, []).append((pid, states[pid]))
    holders: dict[str, set[int]] = {}
    complete = True
    if wanted:
        for pid, state in states.items():
            if state in ("Z", "X"):
                continue  # a zombie holds no files
            try:
                for fd in (_PROC / str(pid) / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if (target := str(fd.readlink())) in wanted:
                            holders.setdefault(target, set()).add(pid)
            except FileNotFoundError:
                continue  # gone
            except OSError:
                complete = False
    return Surroundings(
        members=members,
        holders={pipe: frozenset(pids) for pipe, pids in holders.items()},
        children={pid: tuple(kids) for pid, kids in children.items()},
        complete=complete,
    )


def _descends(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    seen = set()
    while pid not in seen and pid > 1:
        if pid == ancestor:
            return True
        seen.add(pid)
        pid = parents.get(pid, 0)
    return False
