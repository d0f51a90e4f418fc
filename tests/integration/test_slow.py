"""Timing hunts end to end: real minipy builds, real pyperf measurements, git bisect's search.

The loop below is what the session will run for `--symptom slow` (calibrate the
ends, judge each requested revision, record good/bad/skip), so the timing
module is proven on real histories before it is wired into the CLI. Slowdowns
are 150 ms with 20 ms of jitter: no load on a 2-core CI machine hides that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from finbisect.build.builder import BuildConfig, Builder
from finbisect.build.cache import BuildCache
from finbisect.errors import EndpointError
from finbisect.models import HuntKind, Slowdown, Verdict
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from finbisect.runs.timing import Judgement, TimingConfig, TimingProbe, hunt_confidence
from finbisect.search.strategy import AnswerStatus, ClassicBisection
from finbisect.testing.histories import GeneratedHistory, linear_history
from tests.conftest import REPRO, invoke


@dataclass(frozen=True)
class TimingHunt:
    culprit: str | None
    judged: dict[str, Judgement]
    probe: TimingProbe


def _timing_hunt(history: GeneratedHistory, tmp_path: Path, *, good: str, bad: str) -> TimingHunt:
    repro = tmp_path / "repro.py"
    repro.write_text(REPRO)
    logs = tmp_path / "logs"
    config = BuildConfig(command="make", interpreter="python", jobs=1, timeout=120)
    with locked_workspace(tmp_path / "cache", UserRepo(history.path)) as workspace:
        workspace.refresh([good, bad])
        hunt = workspace.plan(good, bad, first_parent=False)
        builder = Builder(workspace, config, logs, BuildCache(tmp_path / "builds"))

        def interpreter(sha: str) -> Path:
            built = builder.build(sha)
            assert built.ok, built.reason
            assert built.interpreter is not None
            return built.interpreter

        probe = TimingProbe(TimingConfig(repro=repro, timeout=30), logs)
        probe.calibrate(interpreter(good), interpreter(bad), good_sha=good, bad_sha=bad)
        search = ClassicBisection(
            hunt.graph, runs=1, bug_is_new=hunt.kind is HuntKind.REGRESSION, verify=False
        )
        judged: dict[str, Judgement] = {}
        while (request := search.next_request()) is not None:
            sha = hunt.graph.shas[request.index]
            judged[sha] = judgement = probe.judge(interpreter(sha), sha)
            if judgement.verdict is Verdict.SKIP:
                search.record_skip(request.index)
            else:
                bad_like = judgement.verdict is Verdict.BAD
                search.record(request.index, symptoms=int(bad_like), clean=int(not bad_like))
        answer = search.answer()
        found = answer.status is AnswerStatus.FOUND and answer.culprit is not None
        culprit = hunt.graph.shas[answer.culprit] if answer.culprit is not None else None
        return TimingHunt(culprit=culprit if found else None, judged=judged, probe=probe)


def test_a_slowdown_at_exit_is_found(tmp_path: Path) -> None:
    history = linear_history(
        tmp_path / "repo", commits=10, culprit=6, symptom="slow", slow_ms=150, jitter_ms=20
    )
    result = _timing_hunt(history, tmp_path, good=history.good, bad=history.bad)
    assert result.culprit == history.culprit, {
        sha[:8]: j.reason for sha, j in result.judged.items()
    }
    assert all(j.verdict is not Verdict.SKIP for j in result.judged.values())
    assert hunt_confidence(j.confidence for j in result.judged.values()) > 0.99
    culprit = result.judged[history.culprit].timing
    parent = result.judged.get(history.shas[5])
    parent_timing = parent.timing if parent is not None else result.probe.good
    assert culprit is not None
    assert parent_timing is not None
    slowdown = Slowdown.between(parent_timing.summary(), culprit.summary())
    assert 100.0 < slowdown.ms < 400.0  # 150 ms on a loaded machine


def test_a_fix_of_a_slowdown_is_found(tmp_path: Path) -> None:
    history = linear_history(
        tmp_path / "repo", commits=6, culprit=2, fix=True, symptom="slow", slow_ms=150,
        jitter_ms=20,
    )  # fmt: skip
    result = _timing_hunt(history, tmp_path, good=history.good, bad=history.bad)
    assert result.culprit == history.culprit


def test_ends_without_a_slowdown_between_them_are_refused(tmp_path: Path) -> None:
    history = linear_history(
        tmp_path / "repo", commits=6, culprit=4, symptom="slow", slow_ms=150, jitter_ms=20
    )
    with pytest.raises(EndpointError) as refused:  # both ends before the culprit
        _timing_hunt(history, tmp_path, good=history.shas[0], bad=history.shas[3])
    assert refused.value.exit_code == 4
    message = refused.value.message
    # On a loaded machine one round may differ by chance; the second round then refuses.
    assert "do not differ" in message or "did not repeat in both rounds" in message
    assert message.count(" ± ") == 2  # both means with their spreads


def test_cli_timing_hunt_names_the_slow_commit(tmp_path: Path) -> None:

    history = linear_history(
        tmp_path / "repo", commits=12, culprit=7, symptom="slow", slow_ms=120, jitter_ms=10
    )
    repro = tmp_path / "r.py"
    repro.write_text("x = 1\n")
    out = tmp_path / "out.json"
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", "make", "--symptom", "slow",
        "--cache-dir", str(tmp_path / "cache"), "--json", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["culprit"]["sha"] == history.culprit
    assert data["slowdown"]["ms"] > 60
    assert data["confidence"] > 0.9
    timed = [s for s in data["steps"] if "timing" in s]
    assert timed
    assert all({"mean_ms", "stdev_ms", "samples"} <= set(s["timing"]) for s in timed)


def test_cli_timing_hunt_refuses_ends_without_a_slowdown(tmp_path: Path) -> None:

    history = linear_history(
        tmp_path / "repo", commits=6, culprit=5, symptom="slow", slow_ms=120, jitter_ms=10
    )
    repro = tmp_path / "r.py"
    repro.write_text("x = 1\n")
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.shas[0],
        "--bad", history.shas[3], "--build-cmd", "make", "--symptom", "slow",
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert result.exit_code == 4
    # On a loaded machine one round may differ by chance; the second round then refuses.
    assert "do not differ" in result.stderr or "did not repeat in both rounds" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--symptom", "slow,crash"], "give it alone"),
        (["--threshold", "5"], "--symptom slow"),
        (["--symptom", "slow", "--runs", "3"], "no meaning with --symptom slow"),
    ],
)
def test_cli_timing_misuse(tmp_path: Path, args: list[str], words: str) -> None:

    history = linear_history(tmp_path / "repo", commits=3, culprit=1)
    repro = tmp_path / "r.py"
    repro.write_text("x = 1\n")
    result = invoke(
        "run", str(repro), "--repo", str(history.path), "--good", history.good,
        "--bad", history.bad, "--build-cmd", "make", *args,
    )  # fmt: skip
    assert result.exit_code == 2
    assert words in result.stderr
