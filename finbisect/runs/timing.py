"""Timing hunts (`--symptom slow`): which commit made the repro's run slower?

Each measurement is `python -m pyperf command` run through `proc.run` (pyperf's
Runner re-spawns its own script, so it cannot be embedded once per revision),
read back with `pyperf.Benchmark.load`: a value is one whole run of
`<interpreter> <repro>`. Samples differ as `pyperf compare_to` says: Student's
two-sample t-test at 95% (pyperf's `is_significant`, generalised to unequal
sizes, with pyperf's critical values), plus, given a threshold, a change of at
least that many percent (compare_to's `--min-speed`).

Endpoints are measured in two interleaved rounds (good, bad, good, bad) and the
bad end must be significantly slower in each: neither chance nor load drifting
between the ends' turns starts a hunt (false start on identical ends ~0.06%).
A revision is GOOD_LIKE when it differs significantly from the bad end and lies
on the good side of the midpoint, in the third nearest the good end if it also
differs from the good end (a loaded machine shifts everything a little);
BAD_LIKE symmetrically (and at least the threshold slower than the good end);
UNCLEAR otherwise: it gets more values, up to `max_samples`, then is a skip.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyperf
from pyperf._cli import format_checks  # private, as are these two, but stable since pyperf 1
from pyperf._utils import tdist95conf_level

from finbisect.errors import EndpointError
from finbisect.models import Verdict
from finbisect.runs import proc
from finbisect.runs.probe import probe_env

__all__ = [
    "Judgement", "Likeness", "MeasurementFailed", "Timing", "TimingConfig", "TimingProbe",
    "classify", "compare_table", "distributions_differ", "hunt_confidence",
    "likeness_confidence", "measure", "noise_warning", "slowdown",
]  # fmt: skip

_OVERHEAD_SECONDS = 60.0  # pyperf's own start-up and metadata, per measurement, generously


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Wall times of whole runs of the repro, in milliseconds."""

    values_ms: tuple[float, ...]

    @property
    def samples(self) -> int:
        return len(self.values_ms)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.values_ms)

    @property
    def stdev_ms(self) -> float:
        return statistics.stdev(self.values_ms) if self.samples > 1 else 0.0

    def merged(self, other: Timing) -> Timing:
        return Timing(values_ms=self.values_ms + other.values_ms)

    def to_json(self) -> dict[str, Any]:
        mean, stdev = round(self.mean_ms, 3), round(self.stdev_ms, 3)
        return {"mean_ms": mean, "stdev_ms": stdev, "samples": self.samples}

    def __str__(self) -> str:
        return f"{_fmt(self.mean_ms)} ± {_fmt(self.stdev_ms)} ({self.samples} values)"


@dataclass(frozen=True, kw_only=True)
class MeasurementFailed:
    """pyperf gave no timing: the repro failed or hung, or pyperf itself failed. Data, not
    an exception (STYLE.md): the caller makes the revision a skip."""

    reason: str
    log_path: Path


class Likeness(enum.StrEnum):
    """A revision's timing in the user's terms."""

    GOOD_LIKE = "good-like"
    BAD_LIKE = "bad-like"
    UNCLEAR = "unclear"

    @property
    def verdict(self) -> Verdict:  # UNCLEAR: a skip
        if self is Likeness.GOOD_LIKE:
            return Verdict.GOOD
        return Verdict.BAD if self is Likeness.BAD_LIKE else Verdict.SKIP


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


# -- statistics ------------------------------------------------------------------
def _t_score(a: Timing, b: Timing) -> float:
    """Student's pooled two-sample t of a - b (pyperf's `tscore`, any sizes)."""
    dof = a.samples + b.samples - 2
    squares = math.fsum([(x - a.mean_ms) ** 2 for x in a.values_ms])
    squares += math.fsum([(x - b.mean_ms) ** 2 for x in b.values_ms])
    diff, error = a.mean_ms - b.mean_ms, squares / dof * (1 / a.samples + 1 / b.samples)
    if error == 0.0:  # no spread at all: any difference is significant
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / math.sqrt(error)


def _significant(a: Timing, b: Timing) -> tuple[bool, float]:
    """(significant at 95%, t of a - b). Fewer than 3 values in all: never significant."""
    dof = a.samples + b.samples - 2
    t = _t_score(a, b) if dof >= 1 else 0.0
    return dof >= 1 and abs(t) >= tdist95conf_level(dof), t


def distributions_differ(
    good: Timing, bad: Timing, *, threshold_percent: float | None = None
) -> tuple[bool, str]:
    """Is `bad` significantly slower than `good` (and by the threshold)? With the reason:
    both means ± stdev, the change, and compare_to's verdict."""
    significant, t = _significant(good, bad)
    change = (bad.mean_ms - good.mean_ms) / good.mean_ms * 100.0
    both = f"good {good}, bad {bad}: {_fmt(bad.mean_ms - good.mean_ms, '+')} ({change:+.1f}%)"
    if not significant:
        return False, f"{both}, not significant (t = {abs(t):.2f})"
    if change <= 0:
        return False, f"{both}: the bad end is faster, not slower"
    if threshold_percent is not None and change < threshold_percent:
        return False, f"{both}, significant but below the {threshold_percent:g}% threshold"
    return True, f"{both}, {_ratio(good, bad)} (t = {abs(t):.2f})"


def _position(sample: Timing, good: Timing, bad: Timing) -> float:
    """Where the sample's mean lies on the good → bad axis (0 = good's mean, 1 = bad's)."""
    return (sample.mean_ms - good.mean_ms) / (bad.mean_ms - good.mean_ms)


def classify(
    sample: Timing, good: Timing, bad: Timing, *, threshold_percent: float | None = None
) -> tuple[Likeness, str]:
    """Like which end is `sample`? See the module docstring for the rule; with a reason."""
    if bad.mean_ms == good.mean_ms:
        raise ValueError("the ends have the same mean: calibrate first")
    differs_good, t_good = _significant(sample, good)
    differs_bad, t_bad = _significant(sample, bad)
    f = _position(sample, good, bad)
    change = (sample.mean_ms - good.mean_ms) / good.mean_ms * 100.0
    where = f"{sample}, {round(f * 100)}% of the way from good to bad"
    if differs_bad and f < 0.5 and (not differs_good or f <= 1 / 3):
        return Likeness.GOOD_LIKE, f"{where}: like the good end (t = {abs(t_bad):.1f} vs bad)"
    if differs_good and f > 0.5 and (not differs_bad or f >= 2 / 3):
        if threshold_percent is not None and change < threshold_percent:
            return Likeness.UNCLEAR, f"{where}: {change:+.1f}% is below the threshold"
        return Likeness.BAD_LIKE, f"{where}: like the bad end (t = {abs(t_good):.1f} vs good)"
    if not differs_good and not differs_bad:
        return Likeness.UNCLEAR, f"{where}: cannot tell the ends apart yet"
    return Likeness.UNCLEAR, f"{where}: between the ends"


def likeness_confidence(sample: Timing, good: Timing, bad: Timing, likeness: Likeness) -> float:
    """P(the class is right), with the two ends as the only hypotheses under a normal
    model (equal priors): 1 / (1 + exp((t_mine² - t_other²) / 2)). 0 for UNCLEAR."""
    if likeness is Likeness.UNCLEAR:
        return 0.0
    t_good, t_bad = _t_score(sample, good), _t_score(sample, bad)
    mine, other = (t_good, t_bad) if likeness is Likeness.GOOD_LIKE else (t_bad, t_good)
    exponent = (mine * mine - other * other) / 2
    return 0.0 if exponent > 700 else 1.0 / (1.0 + math.exp(exponent))


def hunt_confidence(confidences: Iterable[float]) -> float:
    """Confidence of a classic timing hunt's culprit: the product of the confidences of
    every revision whose verdict the search used (one wrong verdict moves the answer;
    verdicts assumed independent). The endpoints, which define the classes, count 1."""
    return math.prod(confidences)


def slowdown(parent: Timing, culprit: Timing) -> dict[str, float]:
    """{"ms", "percent"}: the culprit's mean minus its parent's (negative: a speed-up)."""
    ms = culprit.mean_ms - parent.mean_ms
    return {"ms": round(ms, 3), "percent": round(ms / parent.mean_ms * 100.0, 2)}


def noise_warning(timing: Timing) -> str | None:
    """pyperf's own stability checks on the values (stdev ≥ 10% of the mean, a min or max
    50% off the mean), without "not enough samples" (a 1% precision goal bisection does
    not need). None when quiet."""
    if timing.samples < 2:
        return None
    lines = format_checks(_benchmark(timing))
    found = [ln[2:] for ln in lines if ln.startswith("* ") and "Not enough samples" not in ln]
    return "; ".join(found) if found else None


def compare_table(rows: Sequence[tuple[str, Timing, Timing]]) -> str:
    """A Markdown table like `pyperf compare_to --table --table-format md`, one row per
    (name, good, bad): the means, and the change or "not significant"."""
    header = ["Benchmark", "good", "bad", "change"]
    body = [
        [name, f"{_fmt(g.mean_ms)} ± {_fmt(g.stdev_ms)}", f"{_fmt(b.mean_ms)} ± {_fmt(b.stdev_ms)}",
         _ratio(g, b) if _significant(g, b)[0] else "not significant"]
        for name, g, b in rows
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def _benchmark(timing: Timing) -> Any:
    run = pyperf.Run(
        [v / 1000.0 for v in timing.values_ms],
        metadata={"name": "repro", "unit": "second", "loops": 1},
        collect_metadata=False,
    )
    return pyperf.Benchmark([run])


def _fmt(ms: float, sign: str = "") -> str:
    """Milliseconds the way pyperf prints seconds (`Benchmark.format_value`); sign="+": signed."""
    text: str = _formatter().format_value(abs(ms) / 1000.0)
    return ("-" if ms < 0 else sign) + text


@functools.cache
def _formatter() -> Any:
    return _benchmark(Timing(values_ms=(1.0,)))


def _ratio(good: Timing, bad: Timing) -> str:
    """compare_to's wording: "1.23x slower" / "1.23x faster" / "no change"."""
    norm = bad.mean_ms / good.mean_ms
    if norm == 1.0:
        return "no change"
    return f"{norm:.2f}x slower" if norm > 1.0 else f"{1 / norm:.2f}x faster"


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
