"""Deadlock judgement from /proc samples: which waits cannot end by themselves, and when."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from finbisect.runs import procfs
from finbisect.runs.deadlock import (
    Arch,
    FdQuery,
    ProcessSample,
    Stillness,
    Surroundings,
    ThreadSample,
    Wait,
    deadlock_reason,
    fd_query,
    stuck_waits,
    why_not_deadlocked,
)

X86, ARM = Arch.X86_64, Arch.AARCH64
NEVER = 0xFFFFFFFF  # -1 as a 32-bit int argument: "no timeout" for poll/epoll_wait
PIPE, OTHER_PIPE = "pipe:[100]", "pipe:[200]"


def thread(
    syscall: Sequence[int] | None,
    *,
    tid: int = 10,
    state: str = "S",
    waited: tuple[str, ...] | None = None,
    private_futex: bool = False,
    cpu: int = 5,
) -> ThreadSample:
    args = None if syscall is None else (*syscall, *[0] * (7 - len(syscall)))
    return ThreadSample(
        tid=tid,
        state=state,
        cpu=(cpu,),
        syscall=args,
        waited=waited,
        private_futex=private_futex,
    )


def process(*threads: ThreadSample, pid: int = 10, arch: Arch | None = X86) -> ProcessSample:
    return ProcessSample(pid=pid, ppid=1, pgid=10, state="S", arch=arch, threads=threads)


def futex(op: int, timeout: int = 0) -> list[int]:
    return [202, 0x5000, op, 0, timeout]


READ_PIPE = Wait(syscall="read", endpoints=frozenset({PIPE}))
WRITE_PIPE = Wait(syscall="write", endpoints=frozenset({PIPE}))
CASES = [
    # (arch, thread, the wait if it cannot end by itself)
    (X86, thread(futex(0x189)), Wait(syscall="futex")),  # WAIT_BITSET|PRIVATE|REALTIME: sem_wait
    (X86, thread(futex(0x80)), Wait(syscall="futex")),  # WAIT|PRIVATE: a mutex
    (X86, thread(futex(0x86)), Wait(syscall="futex")),  # LOCK_PI|PRIVATE
    (X86, thread(futex(0x189, timeout=0x7FFF00)), None),  # pthread_cond_timedwait
    (X86, thread(futex(0x81)), None),  # FUTEX_WAKE is no wait
    (X86, thread(futex(0x109)), None),  # shared: anyone mapping the page may wake it...
    (X86, thread(futex(0x109), private_futex=True), Wait(syscall="futex")),  # ...unless private
    (X86, thread(futex(0x189), state="R"), None),  # woken, running
    (X86, thread(futex(0x189), state="D"), None),
    (X86, thread(futex(0x189), state="t"), None),  # stopped by a tracer
    (X86, thread(None), None),  # running, or not in a syscall
    (ARM, thread([98, 0x5000, 0x80]), Wait(syscall="futex")),  # aarch64 numbering
    (ARM, thread(futex(0x80)), None),  # 202 is not futex on aarch64
    (None, thread(futex(0x80)), None),  # unknown architecture: timeout only
    (X86, thread([230, 0, 0, 0x7FFF00]), None),  # clock_nanosleep: sleeping
    (X86, thread([35, 0x7FFF00]), None),  # nanosleep
    (X86, thread([34]), None),  # pause: a signal may come
    (X86, thread([61, NEVER, 0x7FF0, 0, 0]), Wait(syscall="wait4", children=())),
    (X86, thread([61, 42, 0x7FF0, 0, 0]), Wait(syscall="wait4", children=(42,))),
    (X86, thread([61, NEVER, 0x7FF0, 1, 0]), None),  # WNOHANG
    (X86, thread([247, 1, 42, 0x7FF0, 4]), Wait(syscall="waitid", children=(42,))),
    (X86, thread([247, 3, 5, 0x7FF0, 4]), None),  # P_PIDFD
    (X86, thread([0, 3, 0x7FF0, 1], waited=(PIPE,)), READ_PIPE),
    (X86, thread([1, 3, 0x7FF0, 1], waited=(PIPE,)), WRITE_PIPE),
    (X86, thread([0, 3, 0x7FF0, 1], waited=("socket:[7]",)), None),
    (X86, thread([0, 0, 0x7FF0, 1], waited=("/dev/pts/3",)), None),
    (X86, thread([0, 3, 0x7FF0, 1], waited=None), None),  # fds not readable
    (X86, thread([7, 0x7FF0, 2, NEVER], waited=(PIPE, OTHER_PIPE)),
     Wait(syscall="poll", endpoints=frozenset({PIPE, OTHER_PIPE}))),
    (X86, thread([7, 0x7FF0, 2, 1000], waited=(PIPE,)), None),  # poll with a timeout
    (X86, thread([7, 0x7FF0, 2, NEVER], waited=(PIPE, "anon_inode:[eventfd]")), None),
    (X86, thread([7, 0, 0, NEVER], waited=()), None),  # poll on nothing: like pause
    (X86, thread([232, 4, 0x7FF0, 8, NEVER], waited=(PIPE,)),
     Wait(syscall="epoll_wait", endpoints=frozenset({PIPE}))),
    (X86, thread([232, 4, 0x7FF0, 8, 50], waited=(PIPE,)), None),
]  # fmt: skip


@pytest.mark.parametrize(("arch", "sample", "wait"), CASES)
def test_which_waits_cannot_end_by_themselves(
    arch: Arch | None, sample: ThreadSample, wait: Wait | None
) -> None:
    waits = stuck_waits([process(sample, arch=arch)])
    assert (None if waits is None else waits[10, sample.tid]) == wait


@pytest.mark.parametrize(
    ("arch", "syscall", "query"),
    [
        (X86, (0, 5, 0x10, 1, 0, 0, 0), FdQuery(fds=(5,))),
        (X86, (7, 0x10, 3, NEVER, 0, 0, 0), FdQuery(pollfds=(0x10, 3))),
        (X86, (271, 0x10, 3, 0, 0, 8, 0), FdQuery(pollfds=(0x10, 3))),  # ppoll, no timespec
        (X86, (271, 0x10, 3, 0x20, 0, 8, 0), None),
        (X86, (23, 9, 0x10, 0x20, 0, 0, 0), FdQuery(fdsets=(9, (0x10, 0x20, 0)))),
        (X86, (23, 9, 0x10, 0, 0, 0x30, 0), None),  # select with a timeval
        (X86, (281, 4, 0x10, 8, NEVER, 0, 8), FdQuery(epoll=4)),
        (ARM, (73, 0x10, 1, 0, 0, 8, 0), FdQuery(pollfds=(0x10, 1))),
        (ARM, (22, 4, 0x10, 8, NEVER, 0, 8), FdQuery(epoll=4)),
        (X86, (202, 0, 0, 0, 0, 0, 0), None),
    ],
)
def test_which_fds_a_wait_depends_on(
    arch: Arch, syscall: tuple[int, ...], query: FdQuery | None
) -> None:
    assert fd_query(arch, syscall) == query


def test_one_moving_thread_means_no_deadlock() -> None:
    stuck = thread(futex(0x189), tid=10)
    assert stuck_waits([process(stuck, thread(None, tid=11, state="R"))]) is None
    assert stuck_waits([process(stuck, thread([230, 0, 0, 1], tid=11))]) is None


def test_zombie_threads_and_processes_are_neither_running_nor_waiting() -> None:
    stuck = thread(futex(0x189), tid=11)
    zombie = thread(None, tid=10, state="Z")  # a main thread that called pthread_exit
    gone = ProcessSample(pid=12, ppid=10, pgid=10, state="Z", arch=X86, threads=())
    waits = stuck_waits([process(zombie, stuck), gone])
    assert waits == {(10, 11): Wait(syscall="futex")}
    assert stuck_waits([process(zombie)]) is None  # nothing left to judge


def around(
    members: set[int],
    *,
    holders: dict[str, set[int]] | None = None,
    children: dict[int, list[tuple[int, str]]] | None = None,
    complete: bool = True,
) -> Surroundings:
    return Surroundings(
        members=frozenset(members),
        holders={k: frozenset(v) for k, v in (holders or {}).items()},
        children={k: tuple(v) for k, v in (children or {}).items()},
        complete=complete,
    )


PARENT = process(thread([61, 11, 0x7FF0, 0, 0], tid=10), pid=10)  # waits for child 11
CHILD = process(thread([0, 3, 0x7FF0, 1], tid=11, waited=(PIPE,)), pid=11)  # reads the pipe


@pytest.mark.parametrize(
    ("surroundings", "why"),
    [
        (around({10, 11}, holders={PIPE: {10, 11}}, children={10: [(11, "S")]}), None),
        (around({10, 11}, holders={PIPE: {10, 11, 99}}, children={10: [(11, "S")]}),
         "pipe:[100] is also held by process 99, outside the group"),
        (around({10, 11}, holders={PIPE: {10, 11}}, children={10: [(11, "S")]}, complete=False),
         "some processes' open files cannot be read"),
        (around({10, 11, 12}, holders={PIPE: {10, 11}}, children={10: [(11, "S")]}),
         "the group's processes changed"),
        (around({10, 11}, holders={PIPE: {10, 11}}, children={10: [(11, "Z")]}),
         "process 10 waits for child 11, which may end"),
        (around({10, 11}, holders={PIPE: {10, 11}}, children={}),
         "process 10 waits for a child it does not have"),
    ],
)  # fmt: skip
def test_a_stuck_group_is_deadlocked_only_if_its_waits_depend_on_each_other(
    surroundings: Surroundings, why: str | None
) -> None:
    waits = stuck_waits([PARENT, CHILD])
    assert waits is not None
    assert why_not_deadlocked([PARENT, CHILD], waits, surroundings) == why


def test_a_caught_timer_signal_may_end_any_wait() -> None:
    sample = ProcessSample(
        pid=10, ppid=1, pgid=10, state="S", arch=X86, threads=(thread(futex(0x80)),), timers=True
    )
    waits = stuck_waits([sample])
    assert waits is not None
    assert why_not_deadlocked([sample], waits, around({10})) == "a timer signal may end a wait"


def test_any_child_wait_needs_every_child_stuck_in_the_group() -> None:
    parent = process(thread([61, NEVER, 0x7FF0, 0, 0], tid=10), pid=10)
    child = process(thread(futex(0x80), tid=11), pid=11)
    waits = stuck_waits([parent, child])
    assert waits is not None
    one = around({10, 11}, children={10: [(11, "S")]})
    assert why_not_deadlocked([parent, child], waits, one) is None
    two = around({10, 11}, children={10: [(11, "S"), (12, "S")]})  # 12 left the group: unseen
    why = why_not_deadlocked([parent, child], waits, two)
    assert why == "process 10 waits for child 12, which may end"


@pytest.mark.parametrize(
    ("threads", "reason"),
    [
        ((1,), "deadlocked: its only thread blocked for 1.0 s"),
        ((3,), "deadlocked: all 3 threads blocked for 1.0 s"),
        ((1, 1), "deadlocked: all 2 threads of 2 processes blocked for 1.0 s"),
    ],
)
def test_reason_names_the_threads_and_the_grace(threads: tuple[int, ...], reason: str) -> None:
    processes = [
        process(*(thread(futex(0x80), tid=pid * 10 + i) for i in range(n)), pid=pid)
        for pid, n in enumerate(threads, 1)
    ]
    assert deadlock_reason(processes, 1.0) == reason


def test_stillness_counts_from_the_last_change() -> None:
    still = Stillness()
    a = [process(thread(futex(0x80), cpu=5))]
    assert still.observe(a, 10.0) == 0.0
    assert still.observe(a, 10.5) == 0.5
    first = still.generation
    assert still.observe([process(thread(futex(0x80), cpu=6))], 11.0) == 0.0  # it ran
    assert still.generation == first + 1
    assert still.observe([process(thread(futex(0x80), cpu=6))], 12.0) == 1.0


class FakeProc:
    """Stands in for /proc in DeadlockWatch: samples and surroundings in sequence."""

    def __init__(self, samples: list[list[ProcessSample]], around: Surroundings) -> None:
        self.samples = samples
        self.around = around
        self.scans = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        sample = iter(self.samples)
        current: dict[int, ProcessSample] = {}

        def descendants(leader: int) -> list[int]:
            current.clear()
            current.update({p.pid: p for p in next(sample)})
            return list(current)

        def surroundings(leader: int, pipes: object) -> Surroundings:
            self.scans += 1
            return self.around

        monkeypatch.setattr(procfs, "_descendants", descendants)
        monkeypatch.setattr(procfs, "read_process", current.get)
        monkeypatch.setattr(procfs, "surroundings", surroundings)


def test_watch_reports_once_every_thread_stayed_stuck_for_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stuck = [process(thread(futex(0x80), tid=10), thread(futex(0x80), tid=11))]
    fake = FakeProc([stuck] * 6, around({10}))
    fake.install(monkeypatch)
    times = iter([0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    watch = procfs.DeadlockWatch(1.0, clock=lambda: next(times))
    answers = [watch(10) for _ in range(6)]
    assert answers == [None] * 4 + ["deadlocked: all 2 threads blocked for 1.0 s"] * 2
    assert fake.scans == 2  # one full scan per poll past the grace


def test_watch_refused_once_does_not_rescan_until_something_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = [process(thread([0, 3, 0x7FF0, 1], tid=10, waited=(PIPE,)))]
    moved = [process(thread([0, 3, 0x7FF0, 1], tid=10, waited=(PIPE,), cpu=9))]
    fake = FakeProc([reader] * 4 + [moved] * 4, around({10}, holders={PIPE: {10, 99}}))
    fake.install(monkeypatch)
    times = iter(float(t) for t in range(8))
    watch = procfs.DeadlockWatch(1.0, clock=lambda: next(times))
    assert [watch(10) for _ in range(8)] == [None] * 8
    assert fake.scans == 2  # once per still state
    assert watch.refusal == "pipe:[100] is also held by process 99, outside the group"


@pytest.mark.parametrize(
    ("text", "syscall"),
    [
        ("running\n", None),
        ("-1 0x7ffd 0x7f12\n", None),
        ("202 0x55d3 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7fab\n",
         (202, 0x55D3, 0x189, 0, 0, 0, NEVER)),
    ],
)  # fmt: skip
def test_proc_syscall_lines(text: str, syscall: tuple[int, ...] | None) -> None:
    assert procfs._syscall(text) == syscall
