"""Run the repro against a built interpreter and say what each run means.

The contract (README "Probe contract"): each run is `<interpreter> <repro>`
in a fresh empty directory, its own process group, stdin closed, a timeout,
and the user's environment minus the PYTHON* variables that would make the
built interpreter load another installation's files. A run's *kind* is what
happened (ok, crash, hang, error); its *class* is what that means for the
hunt (symptom, clean, unrelated), given the symptom kinds and `--match`.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal as signal_module
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from finbisect.models import Outcome, OutcomeKind, RunClass
from finbisect.runs import proc, procfs, stacks
from finbisect.runs.evidence import Evidence, hang_evidence
from finbisect.runs.stacks import Stacks

__all__ = ["DEFAULT_SYMPTOMS", "Probe", "ProbeConfig", "classify", "probe_env"]

_SIGNATURE_CHARS = 300
DEFAULT_SYMPTOMS = frozenset({OutcomeKind.CRASH, OutcomeKind.HANG})
FATAL_ERROR = "Fatal Python error"
# A sanitizer report is a crash even when the process exits normally (ASan exits
# 1, TSan 66 at exit): it is what those build flavours are for.
_SANITIZER_REPORT = re.compile(r"(ERROR: AddressSanitizer|WARNING: ThreadSanitizer): ")
_FIRST_FRAME = re.compile(r"^\s*#0 0x[0-9a-f]+ in ", re.MULTILINE)

# Variables that point the interpreter at another installation's files.
_FOREIGN_PYTHON_VARS = frozenset(
    {
        "PYTHONHOME",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PYTHONPLATLIBDIR",
        "PYTHONEXECUTABLE",
        "PYTHONPYCACHEPREFIX",
        "__PYVENV_LAUNCHER__",
    }
)


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    repro: Path  # absolute
    timeout: float  # seconds per run
    symptoms: frozenset[OutcomeKind] = DEFAULT_SYMPTOMS
    match: re.Pattern[str] | None = None  # must match a crash's/error's output (hang: stacks)
    parallel: int = 1  # runs at once at the same revision
    hang_grace: float | None = 1.0  # all threads stuck this long: a hang now; 0/None: timeout only
    stacks: bool = True  # a hung group's stacks (gdb) before it is killed
    scratch: Path | None = None  # where each run's fresh directory is made (None: the temp dir)


def probe_env(base: Mapping[str, str]) -> dict[str, str]:
    """The user's environment, minus what would load another Python's files."""
    env = {k: v for k, v in base.items() if k not in _FOREIGN_PYTHON_VARS}
    env["PYTHONNOUSERSITE"] = "1"  # ~/.local site-packages belong to another build
    # An ASan build's exit-time leak report would make every run an "error";
    # use-after-free and friends are still reported. The user's setting wins.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def classify(
    result: proc.ProcResult,
    *,
    symptoms: frozenset[OutcomeKind],
    match: re.Pattern[str] | None,
    stacks: Stacks | None = None,
) -> tuple[OutcomeKind, RunClass, str]:
    """(kind, class, signature) of one finished run. Pure: table-tested.

    A hang's `stacks` (when gdb took them) name it, and `match` applies to them.
    """
    output = _without_header(result.output)
    sanitizer = _SANITIZER_REPORT.search(output)
    if result.timed_out:
        kind = OutcomeKind.HANG
    elif result.signal is not None or FATAL_ERROR in output or sanitizer:
        kind = OutcomeKind.CRASH
    elif result.returncode != 0:
        kind = OutcomeKind.ERROR
    else:
        return OutcomeKind.OK, RunClass.CLEAN, ""
    if kind is OutcomeKind.HANG:
        signature = _hang_signature(result, stacks)
        seen = stacks is not None and stacks.threads
        text = f"{result.hang_reason}\n{stacks.text()}" if stacks is not None and seen else ""
    else:
        signature, text = _signature(kind, result, match), output
    if len(signature) > _SIGNATURE_CHARS:  # one line in a report, whatever the repro printed
        signature = signature[: _SIGNATURE_CHARS - 1] + "…"
    if kind not in symptoms:
        return kind, RunClass.UNRELATED, signature
    if match is not None and (text or kind is not OutcomeKind.HANG) and not match.search(text):
        return kind, RunClass.UNRELATED, signature  # a hang without stacks counts by its kind
    return kind, RunClass.SYMPTOM, signature


def _hang_signature(result: proc.ProcResult, stacks: Stacks | None) -> str:
    """'deadlocked: main thread in take_gil', or the reason alone without stacks."""
    reason = result.hang_reason or "no exit within the timeout"
    if stacks is None or not stacks.threads:
        return reason
    head = "deadlocked" if result.deadlocked else reason
    return f"{head}: {stacks.summary()}"


def _signature(kind: OutcomeKind, result: proc.ProcResult, match: re.Pattern[str] | None) -> str:
    """The line that identifies the failure: the matching line, the fatal error, the last words."""
    lines = [ln.strip() for ln in _without_header(result.output).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("finbisect:")]
    if match is not None:
        for line in lines:
            if match.search(line):
                return line
    if _SANITIZER_REPORT.search(result.output):
        frame = _FIRST_FRAME.search(result.output)
        if frame is not None:  # "#0 0x... in take_gil Python/ceval_gil.c:300"
            return result.output[frame.start() :].splitlines()[0].strip()
    for line in lines:
        if FATAL_ERROR in line:
            return line
    if result.signal is not None:
        return f"killed by {_signal_name(result.signal)}"
    return lines[-1] if lines else f"exit status {result.returncode}"


def _without_header(output: str) -> str:
    """The run's own output: drop proc's "+ cmd" line, which names the repro path."""
    return output.split("\n", 1)[1] if output.startswith("+ ") else output


def _signal_name(number: int) -> str:
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Probe:
    """Runs one repro against interpreters, `runs` times per call."""

    def __init__(self, config: ProbeConfig, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.env = probe_env(os.environ)
        self._advice: dict[str, None] = {}  # ordered set
        # The first hang per revision that counted as the symptom, with its stacks: the
        # evidence at the answer needs no rerun (which may wait the whole --timeout).
        self._hangs_seen: dict[str, Evidence] = {}
        self._stacks_taken: dict[str, str] = {}  # sha -> the log of the run gdb looked at

    def hang_seen(self, sha: str) -> Evidence | None:
        """A symptomatic hang this probe caught at `sha`, stacks included, if any."""
        return self._hangs_seen.get(sha)

    @property
    def advice(self) -> tuple[str, ...]:
        """One line each, for the report to print once: e.g. install gdb to see hangs' stacks."""
        return tuple(self._advice)

    def run(
        self,
        interpreter: Path,
        sha: str,
        *,
        runs: int,
        first_index: int = 0,
        on_run: Callable[[int, int], None] | None = None,
    ) -> tuple[Outcome, ...]:
        """`runs` runs, up to `parallel` at once; `on_run(i, n)` as each starts."""
        if self.config.parallel <= 1 and runs > 1 and self._watches_deadlocks():
            return self._run_overlapping(interpreter, sha, runs, first_index, on_run)
        if self.config.parallel <= 1 or runs <= 1:
            outcomes = []
            for i in range(runs):
                if on_run is not None:
                    on_run(i + 1, runs)
                outcomes.append(self.run_once(interpreter, sha, first_index + i))
            return tuple(outcomes)
        cancel = threading.Event()
        started = itertools.count(1)

        def one(i: int) -> Outcome:
            if on_run is not None:
                on_run(next(started), runs)
            return self.run_once(interpreter, sha, first_index + i, cancel=cancel)

        with ThreadPoolExecutor(max_workers=self.config.parallel) as pool:
            futures = [pool.submit(one, i) for i in range(runs)]
            try:
                return tuple(future.result() for future in futures)
            except BaseException:  # Ctrl-C: every running child's group is killed
                cancel.set()
                for future in futures:
                    future.cancel()
                raise

    def _watches_deadlocks(self) -> bool:
        return bool(self.config.hang_grace) and procfs.supported()

    def _run_overlapping(
        self,
        interpreter: Path,
        sha: str,
        runs: int,
        first_index: int,
        on_run: Callable[[int, int], None] | None,
    ) -> tuple[Outcome, ...]:
        """One run after another, except that the next starts as soon as the one before is
        blocked (every thread in an untimed wait, no CPU, for a moment): a probable hang's
        deadlock grace and gdb's look at it then cost no wall time, and a blocked run takes
        no CPU from the next one. Runs that exit are strictly one after another."""
        cancel = threading.Event()
        results: list[Outcome | BaseException | None] = [None] * runs
        threads: list[threading.Thread] = []

        def one(i: int, blocked: threading.Event) -> None:
            try:
                results[i] = self.run_once(
                    interpreter, sha, first_index + i, cancel=cancel, blocked=blocked
                )
            except BaseException as exc:  # re-raised below, in the caller's thread
                results[i] = exc
            finally:
                blocked.set()  # ended: the next may start

        try:
            for i in range(runs):
                if on_run is not None:
                    on_run(i + 1, runs)
                blocked = threading.Event()
                threads.append(threading.Thread(target=one, args=(i, blocked)))
                threads[-1].start()
                while not blocked.wait(0.05):  # short waits: Ctrl-C is seen here
                    pass
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.05)
        except BaseException:  # Ctrl-C: every running child's group is killed
            cancel.set()
            for thread in threads:
                thread.join()
            raise
        outcomes = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            assert result is not None
            outcomes.append(result)
        return tuple(outcomes)

    def run_once(
        self,
        interpreter: Path,
        sha: str,
        index: int,
        *,
        cancel: threading.Event | None = None,
        blocked: threading.Event | None = None,
    ) -> Outcome:
        if self.config.scratch is not None:
            self.config.scratch.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="finbisect-run-", dir=self.config.scratch))
        stem = f"run-{sha[:12]}-{index + 1}"
        taken: list[Stacks] = []

        def on_hang(pid: int) -> str:
            mine = str(self.logs / f"{stem}.log")
            first = self._stacks_taken.setdefault(sha, mine)  # atomic: runs may overlap
            if first != mine and self.config.match is None:
                # Without --match a hang counts by its kind alone, and another run here
                # has the revision's stacks: gdb would add 0.3-0.5 s to every hung run.
                return f"\nfinbisect: stacks not taken again (this revision's: {first})\n"
            if stacks.gdb_path() is None:
                self._advice[stacks.GDB_ADVICE] = None
                return ""
            found = stacks.attach(
                procfs.group_pids(pid),
                log_dir=self.logs,
                stem=f"gdb-{sha[:12]}-{index + 1}",  # not run-*.log: one log per run
                libpython=stacks.find_libpython(interpreter),
                cancel=cancel,
            )
            taken.append(found)
            if (advice := found.advice()) is not None:
                self._advice[advice] = None
            return "\nfinbisect: stacks of the hung process group (gdb):\n" + found.text()

        grace = self.config.hang_grace
        try:
            result = proc.run(
                [str(interpreter), str(self.config.repro)],
                cwd=workdir,
                timeout=self.config.timeout,
                log_path=self.logs / f"{stem}.log",
                env=self.env,
                cancel=cancel,
                watch=procfs.DeadlockWatch(grace, blocked=blocked)
                if grace and procfs.supported()
                else None,
                on_hang=on_hang if self.config.stacks else None,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        kind, run_class, signature = classify(
            result,
            symptoms=self.config.symptoms,
            match=self.config.match,
            stacks=taken[0] if taken else None,
        )
        if run_class is RunClass.SYMPTOM and taken and sha not in self._hangs_seen:
            seen = hang_evidence(sha, taken[0], result)
            if seen is not None:
                self._hangs_seen.setdefault(sha, seen)  # runs in parallel threads: first wins
        return Outcome(
            kind=kind,
            run_class=run_class,
            returncode=result.returncode,
            signal=result.signal,
            duration=result.duration,
            signature=signature,
            log_path=str(result.log_path),
        )
