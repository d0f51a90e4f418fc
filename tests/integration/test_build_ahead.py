"""Building ahead with the real builder: a build waited for, a build cancelled, whole hunts."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finbisect.build.builder import BuildConfig, Builder
from finbisect.build.cache import BuildCache
from finbisect.hunt.build_ahead import BuildAhead
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from finbisect.testing.histories import GeneratedHistory, linear_history
from tests.conftest import invoke

# Slow enough that a claim always finds the build under way (the stamp says it began).
_SLOW_MAKE = "touch started-$(git rev-parse --short HEAD) && sleep 3 && make"


@pytest.fixture
def history(tmp_path: Path) -> GeneratedHistory:
    return linear_history(tmp_path / "repo", commits=12, culprit=7)


@contextlib.contextmanager
def _builder(tmp_path: Path, history: GeneratedHistory, command: str) -> Iterator[Builder]:
    config = BuildConfig(command=command, interpreter="python", jobs=1, timeout=60)
    with locked_workspace(tmp_path / "cache", UserRepo(history.path)) as workspace:
        workspace.refresh(list(history.shas))
        yield Builder(workspace, config, tmp_path / "logs", BuildCache(tmp_path / "builds"))


def _started(builder: Builder, sha: str) -> bool:
    return any(builder.workspace.root.glob(f"build-*/started-{sha[:7]}"))


def _exit_code(interpreter: Path | None, repro: Path) -> int:
    assert interpreter is not None
    return subprocess.run([interpreter, repro], capture_output=True, check=False).returncode


def _wait_started(builder: Builder, sha: str) -> None:
    """Until the background build of `sha` has begun (its make is sleeping)."""
    deadline = time.monotonic() + 60
    while not _started(builder, sha):
        assert time.monotonic() < deadline, "the background build never began"
        time.sleep(0.02)


def test_a_claimed_revision_is_waited_for_and_not_built_again(
    tmp_path: Path, history: GeneratedHistory, repro: Path
) -> None:
    with _builder(tmp_path, history, _SLOW_MAKE) as builder:
        ahead = BuildAhead(builder)
        wanted = history.shas[5]
        ahead.start(lambda: [wanted, history.shas[9]])
        _wait_started(builder, wanted)
        built = ahead.claim(wanted)
        assert built is not None
        assert built.ok
        assert built.compiled
        assert not built.cached
        assert ahead.stats.started == 1  # the second was dropped once the first was claimed
        assert ahead.stats.used == 1
        assert not _started(builder, history.shas[9])
        assert _exit_code(built.interpreter, repro) == 0  # before the culprit: a clean exit
        ahead.close()


def test_another_revision_cancels_the_build_under_way(
    tmp_path: Path, history: GeneratedHistory, repro: Path
) -> None:
    with _builder(tmp_path, history, _SLOW_MAKE) as builder:
        ahead = BuildAhead(builder)
        ahead.start(lambda: [history.shas[3]])
        _wait_started(builder, history.shas[3])
        assert ahead.claim(history.shas[8]) is None
        assert ahead.stats.cancelled == 1
        assert not builder.cache.has(builder.fingerprint, history.shas[3])
        # The loop builds what it wants in the trees the cancelled build left.
        built = builder.build(history.shas[8])
        assert built.ok
        assert built.interpreter is not None
        assert _exit_code(built.interpreter, repro) != 0  # after the culprit: the crash


def test_a_revisit_of_a_cached_revision_leaves_the_build_under_way(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    with _builder(tmp_path, history, _SLOW_MAKE) as builder:
        visited = history.shas[6]
        assert builder.build(visited).ok
        ahead = BuildAhead(builder)
        ahead.start(lambda: [history.shas[2]])
        _wait_started(builder, history.shas[2])
        assert ahead.claim(visited) is None  # the loop takes it from the cache
        again = builder.build(visited)
        assert again.cached
        assert again.ok
        assert ahead.stats.cancelled == 0
        built = ahead.claim(history.shas[2])  # still under way: waited for
        assert built is not None
        assert built.ok
        assert ahead.stats.used == 1


def test_close_leaves_nothing_running(tmp_path: Path, history: GeneratedHistory) -> None:
    with _builder(tmp_path, history, _SLOW_MAKE) as builder:
        ahead = BuildAhead(builder)
        ahead.start(lambda: [history.shas[2], history.shas[4]])
        _wait_started(builder, history.shas[2])
        ahead.close()  # the suite's leak check fails the test if a make survived
        assert ahead.claim(history.shas[2]) is None


def test_a_disabled_or_cached_revision_is_not_built(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    with _builder(tmp_path, history, "make") as builder:
        assert builder.build(history.shas[4]).ok
        ahead = BuildAhead(builder)
        ahead.start(lambda: [history.shas[4]])
        ahead.close()
        assert ahead.stats.started == 0
        off = BuildAhead(builder, enabled=False)
        off.start(lambda: [history.shas[6]])
        assert off.claim(history.shas[6]) is None
        assert off.stats.started == 0


def test_a_claim_while_the_guess_is_made_builds_nothing(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    guessing, go_on = threading.Event(), threading.Event()

    def slow_guess() -> list[str]:
        guessing.set()
        go_on.wait(30)
        return [history.shas[5]]

    with _builder(tmp_path, history, "make") as builder:
        ahead = BuildAhead(builder)
        ahead.start(slow_guess)
        guessing.wait(30)
        threading.Timer(0.2, go_on.set).start()
        assert ahead.claim(history.shas[8]) is None  # waits for the guess, which then stops
        assert ahead.stats.started == 0
        assert not builder.cache.has(builder.fingerprint, history.shas[5])


def test_a_failing_guess_builds_nothing_and_is_reported(
    tmp_path: Path, history: GeneratedHistory
) -> None:
    def broken() -> list[str]:
        raise ValueError("no posterior")

    with _builder(tmp_path, history, "make") as builder:
        ahead = BuildAhead(builder)
        ahead.start(broken)
        ahead.close()
        assert ahead.stats.started == 0
        assert ahead.problem == "guessing the next revision failed: ValueError('no posterior')"


@pytest.mark.parametrize("flaky", [False, True])
def test_hunts_with_and_without_building_ahead_agree(
    tmp_path: Path, repro: Path, flaky: bool
) -> None:
    history = linear_history(
        tmp_path / "repo", commits=24, culprit=15, crash_percent=60 if flaky else 100
    )
    answers: list[tuple[str, list[str]]] = []
    for extra in ((), ("--no-build-ahead",)):
        out = tmp_path / f"out{len(answers)}.json"
        args = ["--runs", "1"] if not flaky else ["--confidence", "0.999"]
        result = invoke(
            "run", str(repro), "--repo", str(history.path), "--good", history.good,
            "--bad", history.bad, "--build-cmd", "make", "--cache-dir",
            str(tmp_path / f"cache{len(answers)}"), "--json", str(out), *args, *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        data = json.loads(out.read_text())
        answers.append((data["culprit"]["sha"], [s["sha"] for s in data["steps"]]))
        if not extra:
            assert "built ahead while runs went" in result.stderr
            assert data["built_ahead"]["started"] >= data["built_ahead"]["used"] >= 1
        else:
            assert "built ahead" not in result.stderr
            assert "built_ahead" not in data
    assert answers[0][0] == answers[1][0] == history.culprit
    if not flaky:  # git bisect's search does not weigh costs: the same revisions
        assert answers[0][1] == answers[1][1]


def test_a_build_killed_half_way_leaves_nothing_the_next_make_trusts(
    tmp_path: Path, history: GeneratedHistory, repro: Path
) -> None:
    """A build ahead that cannot stop within the grace (TERM ignored, as a make starved
    at nice 19 may be) is KILLed with a half-written ./python newer than its sources;
    the next build of the revision in that tree must not take it as up to date."""
    slow = tmp_path / "slow"
    slow.touch()
    half_way = (
        f"trap '' TERM; if [ -f {slow} ]; then "
        "printf 'half' > python && touch started-$(git rev-parse --short HEAD) && sleep 60; "
        "fi; make"
    )
    with _builder(tmp_path, history, half_way) as builder:
        ahead = BuildAhead(builder)
        wanted = history.shas[3]
        ahead.start(lambda: [wanted])
        _wait_started(builder, wanted)
        assert ahead.claim(history.shas[8]) is None  # stopped: TERM ignored, then KILL
        assert ahead.stats.cancelled == 1
        slow.unlink()
        built = builder.build(wanted)
        assert built.ok, built.reason
        assert _exit_code(built.interpreter, repro) == 0  # a real build, before the culprit
