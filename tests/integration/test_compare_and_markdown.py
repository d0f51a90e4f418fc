"""`finbisect compare` for backport reviews, and Markdown reports for bug trackers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from finbisect.search.stats import rate_interval
from finbisect.testing.histories import linear_history
from tests.conftest import CliResult, Hunt, invoke


def _compare(tmp_path: Path, repro: Path, a: str, b: str, repo: Path, *extra: str) -> CliResult:
    return invoke(
        "compare", a, b, "--repo", str(repo), "--repro", str(repro), "--build-cmd", "make",
        "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "cmp.json"),
        "--markdown", str(tmp_path / "cmp.md"), *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("a", "b", "verdict", "code"),
    [(3, 12, "regressed", 7), (12, 3, "fixed", 0), (1, 6, "same", 0), (10, 14, "same", 0)],
)
def test_compare_verdicts(
    tmp_path: Path, repro: Path, a: int, b: int, verdict: str, code: int
) -> None:
    history = linear_history(tmp_path / "repo", commits=16, culprit=8, crash_percent=40)
    result = _compare(tmp_path, repro, history.shas[a], history.shas[b], history.path)
    assert result.exit_code == code, result.stderr
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert data["version"] == 1
    assert (data["a"], data["b"]) == (history.shas[a], history.shas[b])
    (row,) = data["rows"]
    assert row["verdict"] == verdict
    assert row["recipe"] == str(repro)
    clean = row["a"] if verdict == "regressed" else row["b"]
    if verdict in ("regressed", "fixed"):
        assert clean["symptoms"] == 0
        assert clean["runs"] >= 29  # rules out a 10% rate with 95% confidence
    markdown = (tmp_path / "cmp.md").read_text()
    assert f"**{verdict}**" in markdown
    # minipy's commits are not CPython's: named by hash, not linked to GitHub.
    assert f"`{history.shas[b][:10]}` (B)" in markdown
    assert "github.com/python/cpython/commit" not in markdown
    assert f"finbisect compare {history.shas[a]} {history.shas[b]} --repo" in markdown


def test_compare_with_recipes_selects_by_id(tmp_path: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=4, culprit=2)
    result = invoke(
        "compare", history.shas[0], history.shas[1], "--repo", str(history.path),
        "--only", "bpo-0000", "--build-cmd", "make", "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no recipe bpo-0000" in result.stderr


def test_run_writes_a_markdown_report(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=20, culprit=12, crash_percent=50)
    # A clone of CPython's repository (its remote says so): commits become links.
    subprocess.run(
        ["git", "-C", str(history.path), "remote", "add", "upstream",
         "https://github.com/python/cpython.git"],
        check=True,
    )  # fmt: skip
    md = tmp_path / "report.md"
    result = hunt(
        history.path, history.good, history.bad, "--markdown", str(md), "--confidence", "0.999"
    )
    assert result.exit_code == 0, result.stderr
    text = md.read_text()
    assert f"introduced by [`{history.culprit[:10]}`]" in text
    assert f"https://github.com/python/cpython/commit/{history.culprit}" in text
    assert "[gh-1012](https://github.com/python/cpython/issues/1012)" in text
    assert "| # | commit | verdict | symptom runs | rate (90% interval) | reason |" in text
    assert "**Build:** build command: make" in text
    assert "**Machine:** CPU" in text
    assert "finbisect run " in text


def test_markdown_names_other_histories_commits_by_hash(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=8, culprit=5)
    md = tmp_path / "report.md"
    result = hunt(history.path, history.good, history.bad, "--runs", "1", "--markdown", str(md))
    assert result.exit_code == 0, result.stderr
    text = md.read_text()
    assert f"introduced by `{history.culprit[:10]}`" in text
    assert "github.com/python/cpython/commit" not in text


@pytest.mark.parametrize(("symptoms", "runs"), [(0, 10), (10, 10), (3, 10), (30, 100), (0, 0)])
def test_rate_interval_contains_the_rate(symptoms: int, runs: int) -> None:
    low, high = rate_interval(symptoms, runs)
    rate = symptoms / runs if runs else 0.5
    assert 0.0 <= low <= rate <= high <= 1.0
