"""Every bad input: one line on stderr, its exit code, no traceback, no change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from finbisect.testing.histories import GeneratedHistory, linear_history
from finbisect.testing.minipy import HistoryBuilder
from tests.conftest import Hunt, invoke


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> GeneratedHistory:
    return linear_history(tmp_path_factory.mktemp("h") / "repo", commits=6, culprit=3)


def _one_line(stderr: str) -> str:
    """The error is one line, the last; only progress lines ("[m:ss] ...") precede it."""
    *progress, last = stderr.splitlines()
    assert all(line.startswith("[") for line in progress), stderr
    assert "Traceback" not in stderr
    assert last.startswith("finbisect: error: ")
    return last


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--symptom", "segfault"], 2, "crash, hang, error"),
        (["--symptom", ""], 2, "--symptom"),
        (["--match", "gil("], 2, "not a valid regex"),
        (["--timeout", "0"], 2, "--timeout"),
        (["--runs", "0"], 2, "--runs"),
        (["--jobs", "x"], 2, "--jobs"),
        (["--frobnicate"], 2, "--frobnicate"),
        (["--build-cmd", " "], 2, "'--build-cmd': it is empty"),
        (["--json", "/nonexistent/dir/out.json"], 2, "directory does not exist"),
        (["--markdown", "/nonexistent/dir/out.md"], 2, "directory does not exist"),
        (["--json", "/proc/finbisect-out.json"], 2, "cannot write /proc/finbisect-out.json"),
        (["--timeout", "nan"], 2, "not a finite number"),
        (["--build-timeout", "inf"], 2, "not a finite number"),
        (["--confidence", "nan"], 2, "not a finite number"),
    ],
)
def test_usage_errors(
    history: GeneratedHistory, hunt: Hunt, args: list[str], code: int, words: str
) -> None:
    result = hunt(history.path, history.good, history.bad, *args)
    assert result.exit_code == code
    assert words in _one_line(result.stderr)


def test_missing_repro(tmp_path: Path, history: GeneratedHistory) -> None:
    result = invoke(
        "run", str(tmp_path / "nope.py"), "--repo", str(history.path),
        "--good", history.good, "--bad", history.bad,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "repro script not found" in _one_line(result.stderr)


def test_missing_required_option(repro: Path) -> None:
    result = invoke("run", str(repro), "--good", "a", "--bad", "b")
    assert result.exit_code == 2
    assert "--repo" in _one_line(result.stderr)


def test_not_a_repository(tmp_path: Path, hunt: Hunt) -> None:
    (tmp_path / "plain").mkdir()
    result = hunt(tmp_path / "plain", "a", "b")
    assert result.exit_code == 3
    assert "not a git repository" in _one_line(result.stderr)


@pytest.mark.parametrize(
    ("good", "bad", "words"),
    [
        ("no-such-rev", "HEAD", "unknown revision 'no-such-rev'"),
        ("HEAD", "HEAD", "same commit"),
        ("--all", "HEAD", "not a revision"),
    ],
)
def test_git_errors(history: GeneratedHistory, hunt: Hunt, good: str, bad: str, words: str) -> None:
    result = hunt(history.path, good, bad)
    assert result.exit_code == 3
    assert words in _one_line(result.stderr)


def test_unrelated_revisions(tmp_path: Path, hunt: Hunt) -> None:
    builder = HistoryBuilder(tmp_path / "repo")
    first = builder.commit("one")
    builder._git("checkout", "-q", "--orphan", "other")
    second = builder.commit("two", touch="Doc/notes.txt")
    result = hunt(builder.path, first, second)
    assert result.exit_code == 3
    assert "not ancestors of one another" in _one_line(result.stderr)


def test_swapped_ends_do_not_verify(history: GeneratedHistory, hunt: Hunt) -> None:
    result = hunt(history.path, history.bad, history.good)
    assert result.exit_code == 4
    assert "was expected to be the revision that shows the symptom" in _one_line(result.stderr)


def test_good_end_that_shows_the_symptom(tmp_path: Path, hunt: Hunt) -> None:
    history = linear_history(tmp_path / "repo", commits=6, culprit=3)
    result = hunt(history.path, history.shas[4], history.bad)
    assert result.exit_code == 4
    assert "--good" in _one_line(result.stderr)
    assert "never shows" in result.stderr


def test_endpoint_that_does_not_build(history: GeneratedHistory, hunt: Hunt) -> None:
    result = hunt(history.path, history.good, history.bad, "--build-cmd", "exit 3")
    assert result.exit_code == 6
    assert "does not build" in _one_line(result.stderr)


def test_default_build_outside_cpython(history: GeneratedHistory, repro: Path, cache: Path) -> None:
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 6
    assert "not a CPython tree" in _one_line(result.stderr)


def test_bad_input_leaves_the_repository_alone(history: GeneratedHistory, hunt: Hunt) -> None:
    def state() -> str:
        return subprocess.run(
            ["git", "-C", str(history.path), "for-each-ref", "--format=%(refname) %(objectname)"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    before = state()
    hunt(history.path, history.bad, history.good)
    hunt(history.path, "HEAD", "HEAD")
    assert state() == before


def test_a_cache_inside_the_checkout_is_refused(history: GeneratedHistory, hunt: Hunt) -> None:
    for inside in (history.path / "cache", history.path / ".git" / "finbisect"):
        result = hunt(history.path, history.good, history.bad, "--cache-dir", str(inside))
        assert result.exit_code == 2
        assert "is inside the repository" in _one_line(result.stderr)
        assert not inside.exists()
