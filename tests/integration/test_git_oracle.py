"""With --runs 1, finbisect names what `git bisect run` names, skips included."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finbisect.testing.histories import GeneratedHistory, linear_history
from tests.conftest import REPRO, invoke

# git bisect run's contract: 0 good, 125 skip, 1..127 bad. A crash (exit 134) must
# be folded into 1, or git aborts the bisection.
_GIT_BISECT_SCRIPT = 'make >/dev/null 2>&1 || exit 125\n./python "$1" >/dev/null 2>&1 || exit 1\n'


def _git(repo: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=check
    ).stdout


def git_bisect_answer(history: GeneratedHistory, repro: Path, work: Path) -> list[str]:
    """The candidates `git bisect run` names, in a throwaway clone."""
    clone = work / "oracle"
    subprocess.run(["git", "clone", "-q", str(history.path), str(clone)], check=True)
    script = work / "check.sh"
    script.write_text(_GIT_BISECT_SCRIPT)
    _git(clone, "bisect", "start", history.bad, history.good)
    # Exits non-zero when only skipped commits are left; the output says which.
    out = _git(clone, "bisect", "run", "sh", str(script), str(repro), check=False)
    if m := re.search(r"^([0-9a-f]{40}) is the first bad commit", out, re.MULTILINE):
        return [m.group(1)]
    assert "could be any of" in out, out
    listed = out.split("could be any of:", 1)[1].split("We cannot bisect more", 1)[0]
    return sorted(listed.split(), key=history.shas.index)


def finbisect_answer(history: GeneratedHistory, repro: Path, work: Path) -> list[str]:
    out = work / "out.json"
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", "make", "--runs", "1",
        "--cache-dir", str(work / "cache"), "--json", str(out),
    )  # fmt: skip
    assert result.exit_code in (0, 5), result.stderr
    data = json.loads(out.read_text())
    if data["culprit"] is not None:
        return [data["culprit"]["sha"]]
    return [c["sha"] for c in data["candidates"]]


@st.composite
def _histories(draw: st.DrawFn) -> tuple[int, int, frozenset[int]]:
    commits = draw(st.integers(min_value=3, max_value=24))
    culprit = draw(st.integers(min_value=1, max_value=commits - 1))
    inner = st.integers(min_value=1, max_value=commits - 2)
    broken = draw(st.frozensets(inner, max_size=commits // 2)) if commits > 2 else frozenset()
    return commits, culprit, broken


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(_histories())
def test_same_answer_as_git_bisect_run(case: tuple[int, int, frozenset[int]]) -> None:
    commits, culprit, broken = case
    with tempfile.TemporaryDirectory(prefix="finbisect-oracle-") as tmp:
        work = Path(tmp)
        repro = work / "repro.py"
        repro.write_text(REPRO)
        history = linear_history(work / "repo", commits=commits, culprit=culprit, broken=broken)
        assert finbisect_answer(history, repro, work) == git_bisect_answer(history, repro, work)
