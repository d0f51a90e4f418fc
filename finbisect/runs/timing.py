"""Timing hunts (`--symptom slow`): which commit made the repro's run slower?

Each measurement is `python -m pyperf command` run through `proc.run` (pyperf's
Runner re-spawns its own script, so it cannot be embedded once per revision),
read back with `pyperf.Benchmark.load`: a value is one whole run of
`<interpreter> <repro>`. Samples are compared as `pyperf compare_to` does
(timing_stats.py).

Endpoints are measured in two interleaved rounds (good, bad, good, bad) and the
bad end must be significantly slower in each: neither chance nor load drifting
between the ends' turns starts a hunt (false start on identical ends ~0.06%).
A revision is judged like one end, like the other, or unclear (timing_stats.py); an
unclear one gets more values, up to `max_samples`, then is a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyperf

from finbisect.errors import EndpointError
from finbisect.models import Verdict
from finbisect.runs import proc
from finbisect.runs.probe import probe_env
from finbisect.runs.timing_stats import (
    Likeness,
    Timing,
    classify,
    compare_table,
    distributions_differ,
    hunt_confidence,
    likeness_confidence,
    noise_warning,
)

__all__ = [
    "Judgement", "Likeness", "MeasurementFailed", "Timing", "TimingConfig", "TimingProbe",
    "compare_table", "hunt_confidence", "measure",
]  # fmt: skip

_OVERHEAD_SECONDS = 60.0  # pyperf's own start-up and metadata, per measurement, generously


@dataclass(frozen=True, kw_only=True)
class MeasurementFailed:
    """pyperf gave no timing: the repro failed or hung, or pyperf itself failed. Data, not
    an exception: the caller makes the revision a skip."""

    reason: str
    log_path: Path


# -- measuring -------------------------------------------------------------------
def measure(
    interpreter: Path, repro: Path, *, values: int, processes: int, log_path: Path,
    timeout: float, env: Mapping[str, str], affinity: str | None = None, warmups: int = 1,
) -> Timing | MeasurementFailed:  # fmt: skip
    """`processes` × `values` timed runs of `<interpreter> <repro>` by `pyperf command`.

    `timeout` is per run; the measurement as a whole gets that for every run plus
    pyperf's overhead, then its process group is killed. pyperf's JSON is kept
    beside the log. `env` (the probe's, `probe_env`) reaches the repro whole
    (`--copy-env`), not pyperf's short list of variables.
    """
    json_path = log_path.with_suffix(".json")
    json_path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pyperf", "command", "--processes", str(processes)]
    argv += ["--values", str(values), "--warmups", str(warmups), "--loops", "1"]
    argv += ["--copy-env", "--quiet", "-o", str(json_path)]
    if affinity is not None:
        argv += ["--affinity", affinity]
    argv += ["--", str(interpreter), str(repro)]
    workdir = Path(tempfile.mkdtemp(prefix="finbisect-time-"))
    limit = timeout * processes * (values + warmups) + _OVERHEAD_SECONDS
    try:
        result = proc.run(argv, cwd=workdir, timeout=limit, log_path=log_path, env=env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if result.timed_out:
        reason = f"no timing within {result.duration:.0f} s: the repro may hang"
        return MeasurementFailed(reason=reason, log_path=log_path)
    if not result.ok or not json_path.is_file():
        return MeasurementFailed(reason=_failure_line(result.output), log_path=log_path)
    values_s = pyperf.Benchmark.load(str(json_path)).get_values()
    if not values_s:
        return MeasurementFailed(reason="pyperf recorded no values", log_path=log_path)
    return Timing(values_ms=tuple(v * 1000.0 for v in values_s))


def _failure_line(output: str) -> str:
    if found := re.search(r"^Exception: Command failed with exit code (-?\d+)", output, re.M):
        code = int(found.group(1))  # pyperf: the repro itself failed
        what = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the repro failed under pyperf ({what})"
    lines = [ln.strip() for ln in output.splitlines()[1:] if ln.strip()]
    return f"pyperf failed: {lines[-1] if lines else 'no output'}"


# -- the probe the session uses ----------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TimingConfig:
    repro: Path  # absolute
    timeout: float  # seconds per run of the repro
    threshold_percent: float | None = None  # the slowdown that counts, relative to good
    values: int = 3  # per pyperf worker process (pyperf --values)
    processes: int = 3  # pyperf worker processes per measurement (pyperf --processes)
    max_samples: int = 36  # values at one revision before an unclear one is a skip
    affinity: str | None = None  # pyperf --affinity CPU list
    warmups: int = 1  # values dropped per worker (pyperf --warmups)


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """One revision's timing verdict."""

    likeness: Likeness
    timing: Timing | None  # None: nothing could be measured
    reason: str
    confidence: float = 0.0  # likeness_confidence; 0 for a skip
    warning: str | None = None  # noise_warning of the values

    @property
    def verdict(self) -> Verdict:
        return self.likeness.verdict


class TimingProbe:
    """Measures revisions against the two endpoints' distributions."""

    def __init__(self, config: TimingConfig, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.env = probe_env(os.environ)
        self.good: Timing | None = None  # set by calibrate()
        self.bad: Timing | None = None
        self.calibration = ""  # distributions_differ's message for the ends
        self.warnings: list[str] = []  # noise warnings for the ends, for the report
        self._measured: dict[str, int] = {}

    def measure(self, interpreter: Path, sha: str) -> Timing | MeasurementFailed:
        count = self._measured[sha] = self._measured.get(sha, 0) + 1
        c = self.config
        return measure(
            interpreter, c.repro, values=c.values, processes=c.processes,
            log_path=self.logs / f"timing-{sha[:12]}-{count}.log", timeout=c.timeout,
            env=self.env, affinity=c.affinity, warmups=c.warmups,
        )  # fmt: skip

    def calibrate(
        self, good: Path, bad: Path, *, good_sha: str = "good", bad_sha: str = "bad"
    ) -> None:
        """Both ends, two interleaved rounds; EndpointError (exit 4) unless the bad end is
        significantly slower overall and in each round."""
        ends = (("--good", good, good_sha), ("--bad", bad, bad_sha))
        rounds: list[list[Timing]] = [[], []]
        for pair in rounds:
            for end, interpreter, sha in ends:
                got = self.measure(interpreter, sha)
                if isinstance(got, MeasurementFailed):
                    raise EndpointError(f"{end} {sha[:10]} could not be timed: {got.reason}")
                pair.append(got)
        self.good, self.bad = (rounds[0][i].merged(rounds[1][i]) for i in (0, 1))
        differ, self.calibration = distributions_differ(
            self.good, self.bad, threshold_percent=self.config.threshold_percent
        )
        self.warnings = [
            f"{end}: {warning}"
            for (end, _, _), timing in zip(ends, (self.good, self.bad), strict=True)
            if (warning := noise_warning(timing)) is not None
        ]
        if not differ:
            raise EndpointError(f"the ends' times do not differ enough: {self.calibration}")
        if not all(distributions_differ(g, b)[0] for g, b in rounds):
            raise EndpointError(
                f"the slowdown did not repeat in both rounds of measurement ({self.calibration});"
                " the machine may be too noisy: see `python -m pyperf system show`"
            )

    def judge(self, interpreter: Path, sha: str) -> Judgement:
        """Measure `sha`, adding values while it is unclear, up to `max_samples`."""
        if self.good is None or self.bad is None:
            raise RuntimeError("calibrate() first")
        c, timing = self.config, None
        while True:
            got = self.measure(interpreter, sha)
            if isinstance(got, MeasurementFailed):
                return Judgement(likeness=Likeness.UNCLEAR, timing=timing, reason=got.reason)
            timing = got if timing is None else timing.merged(got)
            likeness, reason = classify(
                timing, self.good, self.bad, threshold_percent=c.threshold_percent
            )
            if likeness is not Likeness.UNCLEAR or timing.samples + got.samples > c.max_samples:
                break
        return Judgement(
            likeness=likeness,
            timing=timing,
            reason=reason if likeness is not Likeness.UNCLEAR else f"stayed unclear: {reason}",
            confidence=likeness_confidence(timing, self.good, self.bad, likeness),
            warning=noise_warning(timing),
        )
