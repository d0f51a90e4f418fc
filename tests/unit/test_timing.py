"""Timing hunts: the statistics on synthetic samples, and one real pyperf measurement."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyperf._utils import is_significant, tdist95conf_level

from finbisect.errors import EndpointError
from finbisect.models import Slowdown, Verdict
from finbisect.runs.probe import probe_env
from finbisect.runs.timing import MeasurementFailed, TimingConfig, TimingProbe, measure
from finbisect.runs.timing_stats import (
    Likeness,
    Timing,
    _significant,
    classify,
    compare_table,
    distributions_differ,
    hunt_confidence,
    likeness_confidence,
    noise_warning,
)

GOOD_LIKE, BAD_LIKE, UNCLEAR = Likeness.GOOD_LIKE, Likeness.BAD_LIKE, Likeness.UNCLEAR


def _t(mean: float, spread: float = 3.0, n: int = 18) -> Timing:
    """n values evenly spread over mean ± spread (deterministic, stdev ≈ 0.6 spread)."""
    if n == 1:
        return Timing(values_ms=(mean,))
    return Timing(values_ms=tuple(mean - spread + 2 * spread * i / (n - 1) for i in range(n)))


GOOD, BAD = _t(10.0), _t(160.0)


@pytest.mark.parametrize(
    ("sample", "expected", "why"),
    [
        (_t(10.0, n=9), GOOD_LIKE, "like the good end"),
        (_t(160.0, n=9), BAD_LIKE, "like the bad end"),
        (_t(5.0, n=9), GOOD_LIKE, "faster than good: still good-like"),
        (_t(200.0, n=9), BAD_LIKE, "slower than bad: still bad-like"),
        (_t(20.0, n=9), GOOD_LIKE, "a little off good (machine load): good-like"),
        (_t(150.0, n=9), BAD_LIKE, "a little off bad: bad-like"),
        (_t(55.0, n=9), GOOD_LIKE, "30% of the way: within the good third"),
        (_t(120.0, n=9), BAD_LIKE, "73% of the way: within the bad third"),
        (_t(70.0, n=9), UNCLEAR, "40% of the way, tight: between the ends"),
        (_t(85.0, n=9), UNCLEAR, "the midpoint"),
        (_t(95.0, n=9), UNCLEAR, "57% of the way, tight: between the ends"),
        (_t(85.0, spread=400.0, n=3), UNCLEAR, "so noisy it cannot be told from either"),
        (_t(30.0, spread=400.0, n=3), UNCLEAR, "nearer good, but not unlike bad"),
    ],
)
def test_classify(sample: Timing, expected: Likeness, why: str) -> None:
    likeness, reason = classify(sample, GOOD, BAD)
    assert likeness is expected, (why, reason)
    assert "of the way from good to bad" in reason


def test_classify_a_wide_sample_near_an_end_is_unclear_until_more_values_come() -> None:
    few = Timing(values_ms=(10.0, 200.0, 12.0))  # one stall: the mean lands mid-way
    assert classify(few, GOOD, BAD)[0] is UNCLEAR
    more = few.merged(Timing(values_ms=(11.0, 9.0, 10.0) * 6))
    assert classify(more, GOOD, BAD)[0] is GOOD_LIKE


def test_classify_with_a_threshold_only_slowdowns_that_big_count() -> None:
    good, bad = _t(100.0, 2.0), _t(200.0, 2.0)
    sample = _t(180.0, 2.0, n=9)  # +80%: like bad, but below a 90% threshold
    assert classify(sample, good, bad)[0] is BAD_LIKE
    likeness, reason = classify(sample, good, bad, threshold_percent=90.0)
    assert likeness is UNCLEAR
    assert "threshold" in reason
    assert classify(sample, good, bad, threshold_percent=50.0)[0] is BAD_LIKE


def test_classify_refuses_ends_with_equal_means() -> None:
    with pytest.raises(ValueError, match="same mean"):
        classify(GOOD, GOOD, GOOD)


@pytest.mark.parametrize(
    ("good", "bad", "threshold", "differ", "says"),
    [
        (_t(10.0), _t(160.0), None, True, "16.00x slower"),
        (_t(10.0), _t(160.0), 1000.0, True, "slower"),  # +1500%
        (_t(10.0), _t(160.0), 2000.0, False, "below the 2000% threshold"),
        (_t(10.0, 5.0), _t(10.5, 5.0), None, False, "not significant"),
        (_t(10.0), _t(10.0), None, False, "not significant"),
        (_t(160.0), _t(10.0), None, False, "faster, not slower"),
        (_t(10.0, n=1), _t(160.0, n=1), None, False, "not significant"),  # no spread known
        (_t(10.0, 0.0, 5), _t(11.0, 0.0, 5), None, True, "1.10x slower"),  # zero variance
    ],
)
def test_distributions_differ(
    good: Timing, bad: Timing, threshold: float | None, differ: bool, says: str
) -> None:
    result, message = distributions_differ(good, bad, threshold_percent=threshold)
    assert result is differ
    assert says in message
    assert message.startswith(f"good {good}, bad {bad}")  # both means ± stdev, with counts


def test_the_message_reports_means_spreads_and_the_difference() -> None:
    _, message = distributions_differ(_t(10.0), _t(160.0))
    assert "10.0 ms ± 1.8" in message
    assert "160 ms ± 1.8" in message
    assert "+150 ms (+1500.0%)" in message


@settings(deadline=None)  # a loaded 2-core machine must not fail a pure property
@given(
    st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=20),
    st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=20),
)
def test_the_t_test_is_pyperfs_on_equal_sizes(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    assume(len(set(a)) > 1 or len(set(b)) > 1)  # pyperf divides by zero otherwise
    ours, t = _significant(Timing(values_ms=tuple(a)), Timing(values_ms=tuple(b)))
    theirs, their_t = is_significant(a, b)
    assert t == pytest.approx(their_t)
    critical = tdist95conf_level(2 * n - 2)
    assume(abs(abs(t) - critical) > 1e-9 * critical)  # not on the edge of float rounding
    assert ours == theirs


def test_confidence_of_a_clear_classification_is_near_one_and_unclear_is_zero() -> None:
    clear = _t(12.0, n=9)
    assert likeness_confidence(clear, GOOD, BAD, GOOD_LIKE) > 0.999
    assert likeness_confidence(clear, GOOD, BAD, UNCLEAR) == 0.0
    middling = _t(70.0, spread=150.0, n=9)  # nearer good, wide: less sure
    assert 0.5 < likeness_confidence(middling, GOOD, BAD, GOOD_LIKE) < 0.999
    assert likeness_confidence(middling, GOOD, BAD, BAD_LIKE) < 0.5
    assert hunt_confidence([0.9, 0.5, 1.0]) == pytest.approx(0.45)
    assert hunt_confidence([]) == 1.0


def test_likeness_maps_to_verdicts() -> None:
    assert GOOD_LIKE.verdict is Verdict.GOOD
    assert BAD_LIKE.verdict is Verdict.BAD
    assert UNCLEAR.verdict is Verdict.SKIP


def test_timing_merges_and_serialises() -> None:
    both = Timing(values_ms=(10.0, 12.0)).merged(Timing(values_ms=(14.0,)))
    assert both.samples == 3
    assert both.summary().to_json() == {
        "mean_ms": 12.0,
        "stdev_ms": 2.0,
        "samples": 3,
        "confidence": 1.0,
    }


def test_slowdown_between_parent_and_culprit() -> None:
    slower = Slowdown.between(_t(100.0).summary(), _t(150.0).summary())
    assert slower.to_json() == {"ms": 50.0, "percent": 50.0}
    faster = Slowdown.between(_t(100.0).summary(), _t(80.0).summary())
    assert faster.to_json() == {"ms": -20.0, "percent": -20.0}


def test_noise_warning_uses_pyperfs_checks() -> None:
    assert noise_warning(_t(100.0, 2.0)) is None
    assert noise_warning(_t(100.0, 2.0, n=2)) is None  # "not enough samples" is not noise
    noisy = noise_warning(Timing(values_ms=(10.0, 20.0, 50.0)))
    assert noisy is not None
    assert "standard deviation" in noisy
    assert "maximum" in noisy


def test_compare_table_is_a_markdown_table_like_compare_to() -> None:
    table = compare_table([("exit", GOOD, BAD), ("same", GOOD, _t(10.1))]).splitlines()
    assert table[0].replace(" ", "") == "|Benchmark|good|bad|change|"
    assert set(table[1]) == {"|", "-"}
    assert "16.00x slower" in table[2]
    assert "10.0 ms ± 1.8" in table[2]
    assert "not significant" in table[3]
    assert len({len(line) for line in table}) == 1  # aligned


# -- one real measurement --------------------------------------------------------
@pytest.fixture
def env() -> dict[str, str]:
    return probe_env(os.environ)


def test_measure_times_whole_runs_with_pyperf(tmp_path: Path, env: dict[str, str]) -> None:
    repro = tmp_path / "sleep.py"
    repro.write_text("import time\ntime.sleep(0.05)\n")
    log = tmp_path / "logs" / "m.log"
    timing = measure(
        Path(sys.executable), repro, values=2, processes=2, log_path=log, timeout=60, env=env,
        warmups=0,
    )  # fmt: skip
    assert isinstance(timing, Timing), timing
    assert timing.samples == 4
    assert 50.0 <= timing.mean_ms < 2000.0  # a loaded machine may add a lot, never take away
    assert log.with_suffix(".json").is_file()
    assert log.read_text().startswith("+ ")


def test_measure_reports_a_failing_repro_as_data(tmp_path: Path, env: dict[str, str]) -> None:
    repro = tmp_path / "fails.py"
    repro.write_text("raise SystemExit(3)\n")
    got = measure(
        Path(sys.executable), repro, values=1, processes=1, log_path=tmp_path / "f.log",
        timeout=60, env=env, warmups=0,
    )  # fmt: skip
    assert isinstance(got, MeasurementFailed)
    assert got.reason == "the repro failed under pyperf (exit status 3)"


# -- the probe's loop, with canned measurements ------------------------------------
class _CannedProbe(TimingProbe):
    """A TimingProbe whose measurements are given, in order (no processes)."""

    def __init__(self, *measurements: Timing | MeasurementFailed, max_samples: int = 27) -> None:
        config = TimingConfig(repro=Path("/r.py"), timeout=1, max_samples=max_samples)
        super().__init__(config, Path("/nonexistent"))
        self.queue = list(measurements)
        self.taken = 0

    def measure(self, interpreter: Path, sha: str) -> Timing | MeasurementFailed:
        self.taken += 1
        return self.queue.pop(0)


_FAILED = MeasurementFailed(reason="the repro failed under pyperf (exit status 1)", log_path=Path())


def _calibrated(*measurements: Timing | MeasurementFailed, max_samples: int = 27) -> _CannedProbe:
    probe = _CannedProbe(_t(10.0, n=9), _t(160.0, n=9), _t(10.0, n=9), _t(160.0, n=9))
    probe.calibrate(Path("g"), Path("b"))
    probe.queue, probe.taken = list(measurements), 0
    probe.config = TimingConfig(repro=Path("/r.py"), timeout=1, max_samples=max_samples)
    return probe


def test_calibrate_keeps_both_ends_and_their_message() -> None:
    probe = _calibrated()
    assert probe.good is not None
    assert probe.good.samples == 18
    assert "16.00x slower" in probe.calibration
    # pyperf's check: 10 ms ± 2 ms is a stdev of 20% of the mean, at the good end only
    assert [warning.split(":")[0] for warning in probe.warnings] == ["--good"]


@pytest.mark.parametrize(
    ("rounds", "says"),
    [
        ((_t(10.0, 5), _t(10.5, 5), _t(10.0, 5), _t(10.5, 5)), "do not differ enough"),
        ((_t(160.0), _t(10.0), _t(160.0), _t(10.0)), "the bad end is faster, not slower"),
        ((_FAILED,), "--good good could not be timed: the repro failed"),
    ],
)
def test_calibrate_refuses_ends_that_do_not_show_a_slowdown(
    rounds: tuple[Timing | MeasurementFailed, ...], says: str
) -> None:
    probe = _CannedProbe(*rounds)
    with pytest.raises(EndpointError) as refused:
        probe.calibrate(Path("g"), Path("b"))
    assert refused.value.exit_code == 4
    assert says in refused.value.message


def test_calibrate_refuses_a_slowdown_seen_in_one_round_only() -> None:
    # Overall the bad end is slower, but the second round shows nothing.
    probe = _CannedProbe(_t(10.0), _t(300.0), _t(10.0), _t(10.2))
    with pytest.raises(EndpointError, match="did not repeat in both rounds"):
        probe.calibrate(Path("g"), Path("b"))


def test_judge_adds_values_while_unclear_then_decides() -> None:
    stalls = Timing(values_ms=(10.0, 400.0, 12.0, 11.0, 9.0, 10.0, 300.0, 10.0, 11.0))
    assert classify(stalls, _t(10.0), _t(160.0))[0] is UNCLEAR  # two stalls: mean half-way
    probe = _calibrated(stalls, _t(10.0, n=9), _t(10.0, n=9), _t(10.0, n=9))
    judgement = probe.judge(Path("python"), "abc")
    assert judgement.verdict is Verdict.GOOD
    assert judgement.timing is not None
    assert judgement.timing.samples == 9 * probe.taken > 9
    assert judgement.confidence > 0.9


def test_judge_calls_a_revision_that_stays_unclear_a_skip() -> None:
    between = _t(85.0, n=9)
    probe = _calibrated(between, between, between, between, max_samples=27)
    judgement = probe.judge(Path("python"), "abc")
    assert judgement.verdict is Verdict.SKIP
    assert judgement.reason.startswith("stayed unclear: ")
    assert probe.taken == 3  # 27 values, then no more
    assert judgement.confidence == 0.0


def test_judge_makes_a_failed_measurement_a_skip() -> None:
    judgement = _calibrated(_FAILED).judge(Path("python"), "abc")
    assert judgement.verdict is Verdict.SKIP
    assert judgement.timing is None
    assert judgement.reason == _FAILED.reason
