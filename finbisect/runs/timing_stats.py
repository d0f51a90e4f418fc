"""Timing statistics, as `pyperf compare_to` judges them (pure).

A revision's values are compared with the ends' by Student's two-sample t-test at
95% (pyperf's `is_significant`, generalised to unequal sizes), plus, given a
threshold, a change of at least that many percent (compare_to's `--min-speed`).
A revision is GOOD_LIKE when it differs significantly from the bad end and lies
on the good side of the midpoint, in the third nearest the good end if it also
differs from the good end (a loaded machine shifts everything a little);
BAD_LIKE symmetrically (and at least the threshold slower than the good end);
UNCLEAR otherwise. Values are printed the way pyperf prints them.
"""

from __future__ import annotations

import enum
import functools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyperf

from finbisect.models import TimingSummary, Verdict
from finbisect.search.stats import t_critical_95

__all__ = [
    "Likeness", "Timing", "classify", "compare_table", "distributions_differ",
    "hunt_confidence", "likeness_confidence", "noise_warning",
]  # fmt: skip


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

    def summary(self, confidence: float = 1.0) -> TimingSummary:
        """What the report and the saved state keep of a measurement."""
        return TimingSummary(
            mean_ms=self.mean_ms,
            stdev_ms=self.stdev_ms,
            samples=self.samples,
            confidence=confidence,
        )

    def __str__(self) -> str:
        return f"{_fmt(self.mean_ms)} ± {_fmt(self.stdev_ms)} ({self.samples} values)"


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
    return dof >= 1 and abs(t) >= t_critical_95(dof), t


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


def noise_warning(timing: Timing) -> str | None:
    """pyperf's own stability checks on the values, in its words (`pyperf check`): stdev
    ≥ 10% of the mean, a min or max 50% off the mean. Not its "not enough samples" (a 1%
    precision goal bisection does not need). None when quiet."""
    if timing.samples < 2:
        return None
    mean = timing.mean_ms
    found = []
    if timing.stdev_ms >= 0.1 * mean:
        found.append(
            f"the standard deviation ({_fmt(timing.stdev_ms)}) is "
            f"{timing.stdev_ms * 100 / mean:.0f}% of the mean ({_fmt(mean)})"
        )
    for name, value in (("minimum", min(timing.values_ms)), ("maximum", max(timing.values_ms))):
        percent = (value - mean) * 100.0 / mean
        if abs(percent) >= 50:
            size = f"{percent:.0f}% greater" if percent >= 0 else f"{-percent:.0f}% smaller"
            found.append(f"the {name} ({_fmt(value)}) is {size} than the mean ({_fmt(mean)})")
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
