"""The default (noisy) search on flaky generated histories: real builds, real races."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from finbisect.testing.histories import linear_history
from finbisect.testing.minipy_trace import TRACE_ENV, max_concurrent_runs, read_trace
from tests.conftest import GIL_MATCH, Hunt


def _json(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "out.json").read_text())
    return data


@pytest.mark.parametrize(
    ("commits", "culprit", "percent", "broken"),
    [(60, 41, 30, {12, 30, 50}), (90, 17, 50, {5, 60})],
)
def test_flaky_regression_is_found_with_its_confidence(
    tmp_path: Path, hunt: Hunt, commits: int, culprit: int, percent: int, broken: set[int]
) -> None:
    history = linear_history(
        tmp_path / "repo",
        commits=commits,
        culprit=culprit,
        crash_percent=percent,
        broken=broken,
        unrelated={culprit - 3},
    )
    # A stricter confidence than the default keeps this test's own error rate negligible.
    result = hunt(
        history.path, history.good, history.bad, "--match", GIL_MATCH, "--confidence", "0.999"
    )
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    assert data["confidence"] >= 0.999
    p = data["p"]
    assert p["low"] <= p["estimate"] <= p["high"]
    # A 90% interval misses the true rate one hunt in ten by design; the estimate
    # itself rests on ~100 runs, so 0.2 is several standard errors.
    assert abs(p["estimate"] - percent / 100) < 0.2
    assert data["builds"] <= 2 * (commits.bit_length() + 2)
    steps = {s["sha"]: s for s in data["steps"]}
    assert len(steps) == len(data["steps"])  # one step per revision, visits summed
    assert sum(s["runs"] for s in data["steps"]) == data["runs"]
    # Progress says "checkout and build" once per revision, "more runs" when it comes back.
    for sha in steps:
        said = re.findall(rf"{sha[:10]}: (checkout and build|more runs, built already)",
                          result.stderr)  # fmt: skip
        assert said[0] == "checkout and build"
        assert said.count("checkout and build") == 1
    assert "more runs, built already" in result.stderr  # (a flaky hunt comes back)
    assert "posterior |" in result.stdout
    # auto checks the one-sided answer without assuming a silent good side, and says
    # that the good side was silent all the same
    assert "symptom rate before the culprit" in result.stdout
    assert re.search(r"the good side never shows the symptom \(it showed in none of its \d+ runs\)",
                     result.stdout)  # fmt: skip
    assert data["p_before"]["estimate"] < 0.2 < data["p_after"]["estimate"]


def test_fix_hunt_on_a_flaky_repro(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=40, culprit=22, fix=True, crash_percent=40)
    result = hunt(history.path, history.good, history.bad, "--confidence", "0.999")
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["hunt"] == "fix"
    assert data["culprit"]["sha"] == history.culprit


def test_spent_budget_is_inconclusive_with_probabilities(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=64, culprit=40, crash_percent=30)
    result = hunt(history.path, history.good, history.bad, "--max-runs", "45")
    assert result.exit_code == 5
    data = _json(tmp_path)
    assert data["culprit"] is None
    probabilities = [c["probability"] for c in data["candidates"]]
    assert probabilities
    assert all(0 < p < 0.95 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    assert data["runs"] <= 45


def test_bad_end_that_never_shows_the_symptom(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=8, culprit=4, crash_percent=0)
    result = hunt(history.path, history.good, history.bad, "--max-runs-per-revision", "25")
    assert result.exit_code == 4
    assert "--bad" in result.stderr
    assert "25 of 25 runs ok" in result.stderr


def test_parallel_runs(tmp_path: Path, hunt: Hunt, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every minipy run records its start and the start of its exit in the trace; a
    # 20 ms exit delay keeps each run under way long enough for parallel ones to meet.
    trace = tmp_path / "trace"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    history = linear_history(
        tmp_path / "repo", commits=30, culprit=11, crash_percent=50, slow_ms=20
    )
    result = hunt(
        history.path,
        history.good,
        history.bad,
        "--parallel-runs",
        "4",
        "--confidence",
        "0.999",
        "--no-evidence",  # the evidence rerun would add runs the result does not count
    )
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    events = read_trace(trace)
    assert len([e for e in events if e.event == "start"]) == data["runs"]
    # Sequential runs never overlap (each ends before the next starts): this fails
    # if --parallel-runs is ignored.
    assert max_concurrent_runs(events) >= 2


def test_always_crashing_repro_costs_about_as_many_builds_as_classic(
    tmp_path: Path, hunt: Hunt
) -> None:
    history = linear_history(tmp_path / "repo", commits=100, culprit=63)
    assert hunt(history.path, history.good, history.bad, "--runs", "1").exit_code == 0
    classic = _json(tmp_path)
    assert hunt(history.path, history.good, history.bad).exit_code == 0
    noisy = _json(tmp_path)
    assert noisy["culprit"]["sha"] == classic["culprit"]["sha"] == history.culprit
    distinct = len(noisy["steps"])
    assert distinct <= len(classic["steps"]) + 1
    assert noisy["runs"] <= 6 * classic["runs"]


def test_a_rare_race_made_frequent_is_found_by_its_rate_change(tmp_path: Path, hunt: Hunt) -> None:
    """The symptom shows before the culprit too (5%), from it on at 50%: the good end's
    symptom does not make the hunt refuse; it hunts for the change of rate."""
    history = linear_history(
        tmp_path / "repo", commits=40, culprit=23, crash_percent=50, crash_percent_before=5
    )
    result = hunt(history.path, history.good, history.bad, "--max-runs", "3000")
    assert result.exit_code == 0, result.stderr
    data = _json(tmp_path)
    assert data["culprit"]["sha"] == history.culprit
    assert data["confidence"] >= 0.95
    before, after = data["p_before"], data["p_after"]
    assert before["low"] <= before["estimate"] <= before["high"] < after["low"]
    assert "symptom rate before the culprit" in result.stdout


def test_ends_with_the_same_rate_are_refused(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(
        tmp_path / "repo", commits=12, culprit=6, crash_percent=100, crash_percent_before=100
    )
    result = hunt(history.path, history.good, history.bad)
    assert result.exit_code == 4
    assert "never shows the symptom" in result.stderr
