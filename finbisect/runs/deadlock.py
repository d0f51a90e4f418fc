"""When a process group can no longer end by itself: deadlocks judged from /proc samples.

Pure logic, table-tested: `procfs` reads /proc into the samples defined here,
this module judges them. A group is deadlocked when every live thread of every
process sits in a wait that nothing left running can end, and all of them have
stayed exactly there, using no CPU, for a grace period. Waits that count:

- futex waits without a timeout (locks, semaphores, condition variables, joins);
  a shared futex only when its address lies in a private mapping;
- wait4/waitid for children that are themselves stuck members of the group;
- read/write/poll/select/epoll without a timeout on pipes that no process outside
  the group holds (a pipe to the outside, e.g. a log or a terminal, may move).

Anything else (a timed wait, a sleep, disk I/O, sockets, an unknown syscall or
architecture, a caught timer signal) means "may end by itself": the timeout decides.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Arch",
    "FdQuery",
    "ProcessSample",
    "Stillness",
    "Surroundings",
    "ThreadSample",
    "Wait",
    "deadlock_reason",
    "fd_query",
    "shared_futex_address",
    "stuck_waits",
    "syscall_name",
    "why_not_deadlocked",
]


class Arch(enum.StrEnum):
    """Architectures whose syscall numbers we know (anything else: timeout only)."""

    X86_64 = "x86_64"
    AARCH64 = "aarch64"


_SYSCALLS: Mapping[Arch, Mapping[int, str]] = {
    Arch.X86_64: {
        0: "read", 1: "write", 7: "poll", 19: "readv", 20: "writev", 23: "select",
        45: "recvfrom", 47: "recvmsg", 61: "wait4", 202: "futex", 232: "epoll_wait",
        247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 441: "epoll_pwait2",
    },
    Arch.AARCH64: {  # asm-generic numbering: no poll, select or epoll_wait
        22: "epoll_pwait", 63: "read", 64: "write", 65: "readv", 66: "writev",
        72: "pselect6", 73: "ppoll", 95: "waitid", 98: "futex", 207: "recvfrom",
        212: "recvmsg", 260: "wait4", 441: "epoll_pwait2",
    },
}  # fmt: skip

_FUTEX_PRIVATE_FLAG = 128
_FUTEX_CLOCK_REALTIME = 256
# FUTEX_WAIT, FUTEX_LOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI, FUTEX_LOCK_PI2
_FUTEX_WAITS = frozenset({0, 6, 9, 11, 13})
_WNOHANG = 1
_P_ALL, _P_PID, _P_PGID = 0, 1, 2
_FD_SYSCALLS = frozenset({"read", "write", "readv", "writev", "recvfrom", "recvmsg"})
_DEAD = frozenset({"Z", "X", "x"})  # zombie or dead: neither running nor waiting


@dataclass(frozen=True, kw_only=True)
class ThreadSample:
    """One thread as /proc showed it."""

    tid: int
    state: str  # stat's state letter: R running, S sleeping, D disk, T/t stopped, Z zombie
    cpu: tuple[int, ...]  # utime+stime ticks, then schedstat's run time and timeslices if any
    syscall: tuple[int, ...] | None = None  # number and six arguments; None: not in a syscall
    waited: tuple[str, ...] | None = None  # targets of the fds it waits on ("pipe:[12]")
    private_futex: bool = False  # a shared futex's address is in a private mapping


@dataclass(frozen=True, kw_only=True)
class ProcessSample:
    pid: int
    ppid: int
    pgid: int
    state: str
    arch: Arch | None  # of its executable; None: unknown, so nothing it does is judged
    threads: tuple[ThreadSample, ...]
    timers: bool = False  # a timer signal may come: SIGALRM/SIGVTALRM/SIGPROF caught, POSIX timers

    @property
    def live_threads(self) -> tuple[ThreadSample, ...]:
        return tuple(t for t in self.threads if t.state not in _DEAD)


@dataclass(frozen=True, kw_only=True)
class Surroundings:
    """What only a scan of every process shows; read once, when a group looks stuck."""

    members: frozenset[int]  # live processes of the process group or descended from its leader
    holders: Mapping[str, frozenset[int]]  # pipe -> every process holding either end
    children: Mapping[int, tuple[tuple[int, str], ...]]  # pid -> (child pid, state) of each child
    complete: bool = True  # every process's fd table could be read


@dataclass(frozen=True, kw_only=True)
class FdQuery:
    """Which fds an fd wait waits on, as far as the syscall's arguments say."""

    fds: tuple[int, ...] = ()  # fd numbers in the arguments
    pollfds: tuple[int, int] | None = None  # (address, count) of a struct pollfd array
    fdsets: tuple[int, tuple[int, ...]] | None = None  # (nfds, addresses of fd_set bitmaps)
    epoll: int | None = None  # an epoll fd: the fds it watches


@dataclass(frozen=True, kw_only=True)
class Wait:
    """A wait that cannot end by itself, given what it depends on."""

    syscall: str
    endpoints: frozenset[str] = frozenset()  # pipes that no process outside the group may hold
    children: tuple[int, ...] | None = None  # waited-for children; () any child; None: no child


def syscall_name(arch: Arch | None, syscall: tuple[int, ...] | None) -> str | None:
    if arch is None or syscall is None:
        return None
    return _SYSCALLS[arch].get(syscall[0])


def _int(value: int) -> int:
    """A 32-bit C int argument, as printed in an unsigned 64-bit register."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def fd_query(arch: Arch | None, syscall: tuple[int, ...] | None) -> FdQuery | None:
    """The fds an untimed fd wait depends on; None if this is no such wait."""
    name = syscall_name(arch, syscall)
    if name is None or syscall is None:
        return None
    a = syscall[1:]
    untimed = {
        "poll": _int(a[2]) < 0,  # milliseconds, negative: forever
        "ppoll": a[2] == 0,  # a NULL timespec: forever
        "select": a[4] == 0,
        "pselect6": a[4] == 0,
        "epoll_wait": _int(a[3]) < 0,
        "epoll_pwait": _int(a[3]) < 0,
        "epoll_pwait2": a[3] == 0,
    }.get(name, name in _FD_SYSCALLS)
    if not untimed:
        return None
    if name in ("poll", "ppoll"):
        return FdQuery(pollfds=(a[0], a[1]))
    if name in ("select", "pselect6"):
        return FdQuery(fdsets=(a[0], (a[1], a[2], a[3])))
    if name.startswith("epoll"):
        return FdQuery(epoll=_int(a[0]))
    return FdQuery(fds=(_int(a[0]),))


def _untimed_futex(syscall: tuple[int, ...]) -> tuple[bool, bool]:
    """(an untimed futex wait?, on a private futex?)"""
    op = syscall[2]
    command = op & ~(_FUTEX_PRIVATE_FLAG | _FUTEX_CLOCK_REALTIME)
    return command in _FUTEX_WAITS and syscall[4] == 0, bool(op & _FUTEX_PRIVATE_FLAG)


def shared_futex_address(arch: Arch | None, syscall: tuple[int, ...] | None) -> int | None:
    """The address of an untimed wait on a shared futex: is it in a private mapping?"""
    if syscall_name(arch, syscall) != "futex" or syscall is None:
        return None
    untimed, private = _untimed_futex(syscall)
    return syscall[1] if untimed and not private else None


def _wait(arch: Arch | None, thread: ThreadSample) -> Wait | None:
    """The thread's wait if it cannot end by itself given its dependencies, else None."""
    if thread.state != "S" or thread.syscall is None:
        return None
    name = syscall_name(arch, thread.syscall)
    if name == "futex":
        untimed, private = _untimed_futex(thread.syscall)
        return Wait(syscall=name) if untimed and (private or thread.private_futex) else None
    if name in ("wait4", "waitid"):
        return _child_wait(name, thread.syscall[1:])
    if name is None or fd_query(arch, thread.syscall) is None or not thread.waited:
        return None
    if not all(target.startswith("pipe:[") for target in thread.waited):
        return None  # sockets, terminals, files, eventfds...: may move
    return Wait(syscall=name, endpoints=frozenset(thread.waited))


def _child_wait(name: str, a: tuple[int, ...]) -> Wait | None:
    if name == "wait4":  # wait4(pid, status, options, rusage)
        pid = _int(a[0])
        return None if a[2] & _WNOHANG else Wait(syscall=name, children=(pid,) if pid > 0 else ())
    idtype = _int(a[0])  # waitid(idtype, id, infop, options, rusage)
    if a[3] & _WNOHANG or idtype not in (_P_ALL, _P_PID, _P_PGID):
        return None  # P_PIDFD: which child is not visible here
    return Wait(syscall=name, children=(_int(a[1]),) if idtype == _P_PID else ())


def stuck_waits(processes: Sequence[ProcessSample]) -> dict[tuple[int, int], Wait] | None:
    """Every live thread's wait, if each is one that cannot end by itself; else None."""
    waits: dict[tuple[int, int], Wait] = {}
    for process in processes:
        if process.state in _DEAD:
            continue
        for thread in process.live_threads:
            wait = _wait(process.arch, thread)
            if wait is None:
                return None
            waits[process.pid, thread.tid] = wait
    return waits or None


def why_not_deadlocked(
    processes: Sequence[ProcessSample],
    waits: Mapping[tuple[int, int], Wait],
    around: Surroundings,
) -> str | None:
    """None if the stuck waits depend only on each other; else why they may still end."""
    live = frozenset(p.pid for p in processes if p.state not in _DEAD and p.live_threads)
    if live != around.members:
        return "the group's processes changed"
    if any(p.timers for p in processes if p.pid in live):
        return "a timer signal may end a wait"
    for (pid, _tid), wait in sorted(waits.items()):
        why = _outside_holder(wait, around) or _moving_child(pid, wait, around)
        if why:
            return why
    return None


def _outside_holder(wait: Wait, around: Surroundings) -> str | None:
    if wait.endpoints and not around.complete:
        return "some processes' open files cannot be read"
    for pipe in sorted(wait.endpoints):
        outside = around.holders.get(pipe, frozenset()) - around.members
        if outside:
            return f"{pipe} is also held by process {min(outside)}, outside the group"
    return None


def _moving_child(pid: int, wait: Wait, around: Surroundings) -> str | None:
    if wait.children is None:
        return None
    children = dict(around.children.get(pid, ()))
    if not children:
        return f"process {pid} waits for a child it does not have"
    for child in wait.children or tuple(children):
        if children.get(child, "X") in _DEAD or child not in around.members:
            return f"process {pid} waits for child {child}, which may end"
    return None


def deadlock_reason(processes: Sequence[ProcessSample], grace: float) -> str:
    """'deadlocked: all 3 threads blocked for 1.0 s' (the grace, not a measured time)."""
    live = [p for p in processes if p.state not in _DEAD and p.live_threads]
    threads = sum(len(p.live_threads) for p in live)
    if threads == 1:
        return f"deadlocked: its only thread blocked for {grace:.1f} s"
    where = f" of {len(live)} processes" if len(live) > 1 else ""
    return f"deadlocked: all {threads} threads{where} blocked for {grace:.1f} s"


class Stillness:
    """How long every live thread has stayed exactly as it is (state, syscall, CPU)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[int, int], object] = {}
        self._since = 0.0
        self.generation = 0  # changes whenever anything moved

    def observe(self, processes: Sequence[ProcessSample], now: float) -> float:
        keys: dict[tuple[int, int], object] = {
            (p.pid, t.tid): (t.state, t.syscall, t.cpu)
            for p in processes
            if p.state not in _DEAD
            for t in p.live_threads
        }
        if keys != self._keys or not keys:
            self._keys, self._since = keys, now
            self.generation += 1
        return now - self._since

    def reset(self) -> None:
        if self._keys:
            self._keys = {}
            self.generation += 1
