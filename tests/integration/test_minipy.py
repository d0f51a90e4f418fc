"""minipy histories: real git, real make, real runs of the built ./python."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from finbisect.testing.demo import demo_history
from finbisect.testing.histories import GeneratedHistory, linear_history, merge_history
from finbisect.testing.minipy import DEFAULT_KNOBS, HistoryBuilder
from finbisect.testing.minipy_trace import (
    RANDOM_STATE_ENV,
    TRACE_ENV,
    TraceEvent,
    max_concurrent_runs,
    read_trace,
    write_random_state,
)

FATAL_GIL = "Fatal Python error: pthread_mutex_destroy(gil_mutex) failed"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _make(repo: Path, sha: str) -> subprocess.CompletedProcess[str]:
    """Check out ``sha`` in the generated repository itself and build it."""
    _git(repo, "checkout", "--quiet", "--detach", sha)
    return subprocess.run(
        ["make", "-C", str(repo)], capture_output=True, text=True, timeout=60, check=False
    )


def _build(repo: Path, sha: str) -> Path:
    done = _make(repo, sha)
    assert done.returncode == 0, done.stderr
    return repo / "python"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "repro.py"
    path.write_text("import threading\nthreading.Thread(daemon=True).start()\nprint('bye')\n")
    return path


def _run(python: Path, script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One run; `env` adds to the environment (which has the test's MINIPY_RANDOM_STATE)."""
    return subprocess.run(
        [str(python), str(script)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        env={**os.environ, **env},
    )


def _group_members(pgid: int) -> set[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(stat.parent.name))
    return members


def test_healthy_revision_runs_the_script_and_exits_zero(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=3, culprit=2)
    python = _build(history.path, history.good)

    done = _run(python, script)

    assert done.returncode == 0
    assert done.stdout == f"minipy 0.1: ran {script} (3 lines)\n"
    assert done.stderr == ""
    assert _git(history.path, "status", "--porcelain") == ""  # build products are ignored


def test_missing_script_is_errno_2(tmp_path: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1)
    python = _build(history.path, history.good)
    missing = tmp_path / "nope.py"

    done = _run(python, missing)
    bare = subprocess.run([str(python)], capture_output=True, text=True, timeout=10, check=False)

    assert done.returncode == 2
    assert done.stderr == (
        f"python: can't open file '{missing}': [Errno 2] No such file or directory\n"
    )
    assert bare.returncode == 2
    assert "[Errno 2]" in bare.stderr


def test_crash_regression_aborts_from_the_culprit_on(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=6, culprit=3)
    assert history.good == history.shas[0]
    assert history.bad == history.shas[-1]
    assert history.culprit == history.first_parent_culprit == history.shas[3]

    before = _run(_build(history.path, history.shas[2]), script)
    at = _run(_build(history.path, history.culprit), script)
    last = _run(_build(history.path, history.bad), script)

    assert before.returncode == 0
    assert at.returncode == last.returncode == -signal.SIGABRT
    assert FATAL_GIL in at.stderr
    assert "Python runtime state: finalizing (tstate=0x" in at.stderr
    assert at.stdout.startswith("minipy 0.1: ran ")


def test_fix_history_crashes_until_the_culprit(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=5, culprit=2, fix=True)
    assert (history.good, history.bad) == (history.shas[-1], history.shas[0])

    assert _run(_build(history.path, history.bad), script).returncode == -signal.SIGABRT
    assert _run(_build(history.path, history.shas[1]), script).returncode == -signal.SIGABRT
    assert _run(_build(history.path, history.culprit), script).returncode == 0
    assert _run(_build(history.path, history.good), script).returncode == 0


def test_error_symptom_exits_one(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, symptom="error")

    done = _run(_build(history.path, history.bad), script)

    assert done.returncode == 1
    assert "RuntimeError: can't create new thread at interpreter shutdown" in done.stderr


def test_hang_symptom_keeps_three_processes_until_the_group_is_killed(
    tmp_path: Path, script: Path
) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, symptom="hang")
    python = _build(history.path, history.bad)
    trace = tmp_path / "trace"

    child = subprocess.Popen(
        [str(python), str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, TRACE_ENV: str(trace)},
    )
    try:
        # Wait (boundedly) for the interpreter, child and grandchild to be there.
        deadline = time.monotonic() + 30
        while len(_group_members(child.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_group_members(child.pid)) == 3  # interpreter, child, grandchild
        assert child.poll() is None
        assert [(e.event, e.detail) for e in read_trace(trace)][-1] == ("finalize", "hang")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)

    deadline = time.monotonic() + 30
    while _group_members(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_members(child.pid) == set()


def test_unrelated_crash_segfaults_instead(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=5, culprit=1, unrelated=[2])
    assert history.unrelated == (history.shas[2],)

    done = _run(_build(history.path, history.shas[2]), script)
    after = _run(_build(history.path, history.shas[3]), script)

    assert done.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert 'File "_io", line 1 in flush' in done.stderr
    assert "gil_mutex" not in done.stderr
    assert after.returncode == -signal.SIGABRT


def test_broken_revision_does_not_build_and_the_next_does(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=5, culprit=3, broken=[1])
    assert history.broken == (history.shas[1],)

    failed = _make(history.path, history.shas[1])
    assert failed.returncode != 0
    assert '#error "gil.c: broken at this revision"' in failed.stderr

    assert _run(_build(history.path, history.shas[2]), script).returncode == 0


def test_checkout_then_make_rebuilds(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=3, culprit=1)
    for sha, expected in [(history.good, 0), (history.bad, -6), (history.good, 0)]:
        assert _run(_build(history.path, sha), script).returncode == expected


def test_flaky_crash_rate(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, crash_percent=30)
    python = _build(history.path, history.bad)

    results = [_run(python, script).returncode for _ in range(60)]

    assert set(results) <= {0, -signal.SIGABRT}
    assert 5 <= results.count(-signal.SIGABRT) <= 40


def test_slow_exit(tmp_path: Path, script: Path) -> None:
    """The slow revision sleeps its 300 ms at exit (it says so once it has); the fast one not."""
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, symptom="slow", slow_ms=300)
    fast_trace, slow_trace = tmp_path / "fast", tmp_path / "slow"
    fast = _run(_build(history.path, history.good), script, **{TRACE_ENV: str(fast_trace)})
    slow = _run(_build(history.path, history.bad), script, **{TRACE_ENV: str(slow_trace)})

    assert fast.returncode == slow.returncode == 0
    assert fast.stderr == slow.stderr == ""  # the trace goes to its file only
    assert [(e.event, e.detail) for e in read_trace(fast_trace)] == [
        ("start", ""),
        ("finalize", "ok"),
    ]
    assert [(e.event, e.detail) for e in read_trace(slow_trace)] == [
        ("start", ""),
        ("delayed", "300"),
        ("finalize", "ok"),
    ]
    assert "#define EXIT_SLOW_MS 300" in _git(history.path, "show", f"{history.bad}:config.h")
    assert "#define EXIT_SLOW_MS 0" in _git(history.path, "show", f"{history.good}:config.h")


def test_jitter_is_drawn_per_run_within_its_bounds(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, slow_ms=5, jitter_ms=10)
    python = _build(history.path, history.good)
    trace = tmp_path / "trace"

    for _ in range(20):
        assert _run(python, script, **{TRACE_ENV: str(trace)}).returncode == 0

    delays = [int(e.detail) for e in read_trace(trace) if e.event == "delayed"]
    assert len(delays) == 20
    assert all(5 <= d <= 15 for d in delays)
    assert len(set(delays)) > 1


def test_random_state_makes_runs_reproducible(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, crash_percent=50)
    python = _build(history.path, history.bad)

    def codes(start: int, name: str, runs: int = 40) -> list[int]:
        state = tmp_path / name
        write_random_state(state, start)
        codes = [
            _run(python, script, **{RANDOM_STATE_ENV: str(state)}).returncode for _ in range(runs)
        ]
        assert state.read_text() == f"{(start + runs) % 2**64}\n"  # one number per run
        return codes

    first, again, other = codes(7, "a"), codes(7, "b"), codes(8, "c")
    assert first == again
    assert set(first) == {0, -signal.SIGABRT}
    assert other[:-1] == first[1:]  # the stream starting one number later
    assert codes(2**64 - 1, "d", runs=2)  # the counter wraps around


def test_a_random_state_file_that_cannot_be_used_is_an_error(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1, crash_percent=50)
    python = _build(history.path, history.bad)
    missing_dir = tmp_path / "nowhere" / "state"

    done = _run(python, script, **{RANDOM_STATE_ENV: str(missing_dir)})

    assert done.returncode == 3
    assert f"minipy: MINIPY_RANDOM_STATE={missing_dir}: No such file or directory" in done.stderr
    # A missing file in an existing directory is simply created, starting at 0.
    fresh = tmp_path / "fresh"
    assert _run(python, script, **{RANDOM_STATE_ENV: str(fresh)}).returncode in (0, -6)
    assert fresh.read_text() == "1\n"


def test_trace_counts_overlapping_runs(tmp_path: Path, script: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=2, culprit=1)
    python = _build(history.path, history.good)
    trace = tmp_path / "trace"

    for _ in range(3):
        _run(python, script, **{TRACE_ENV: str(trace)})

    events = read_trace(trace)
    assert [e.event for e in events] == ["start", "finalize"] * 3
    assert len({e.pid for e in events}) == 3
    assert max_concurrent_runs(events) == 1


def test_max_concurrent_runs() -> None:
    def ev(event: str, pid: int, ns: int) -> TraceEvent:
        return TraceEvent(event=event, pid=pid, ns=ns, detail="")

    one_after_another = [ev("start", 1, 0), ev("finalize", 1, 5), ev("start", 2, 5)]
    crossing = [ev("start", 1, 0), ev("start", 2, 3), ev("finalize", 1, 5), ev("finalize", 2, 9)]
    assert max_concurrent_runs([]) == 0
    assert max_concurrent_runs(one_after_another) == 1
    assert max_concurrent_runs(crossing) == 2
    # A run killed before it finalized counts until the end of the trace.
    assert max_concurrent_runs([*crossing, ev("start", 3, 1)]) == 3


def test_same_arguments_same_hashes(tmp_path: Path) -> None:
    first = linear_history(tmp_path / "a", commits=6, culprit=2, broken=[4], unrelated=[1])
    second = linear_history(tmp_path / "b", commits=6, culprit=2, broken=[4], unrelated=[1])
    other = linear_history(tmp_path / "c", commits=6, culprit=3)

    assert first.shas == second.shas
    assert first.culprit == second.culprit
    assert first.shas[0] == other.shas[0]
    assert first.shas[-1] != other.shas[-1]


def test_every_commit_changes_a_file(tmp_path: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=5, culprit=2)
    for sha in history.shas[1:]:
        assert _git(history.path, "diff-tree", "--no-commit-id", "--name-only", "-r", sha)


def test_linear_history_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="culprit"):
        linear_history(tmp_path / "a", commits=3, culprit=3)
    with pytest.raises(ValueError, match="broken"):
        linear_history(tmp_path / "b", commits=3, culprit=1, broken=[0])
    with pytest.raises(ValueError, match="EXIT_CRASH_PERCENT"):
        linear_history(tmp_path / "c", commits=3, culprit=1, crash_percent=101)


def test_builder_tracks_knobs_across_branches_and_merges(tmp_path: Path) -> None:
    builder = HistoryBuilder(tmp_path / "repo")
    assert builder.knobs == DEFAULT_KNOBS
    root = builder.commit("Initial import")
    builder.commit("Slow down", EXIT_SLOW_MS=5)
    builder.branch("side", at=root)
    assert builder.knobs["EXIT_SLOW_MS"] == 0
    builder.commit("Crash at exit", EXIT_CRASH_PERCENT=50, author="Side Dev <side@example.org>")
    builder.switch("main")
    builder.commit("More jitter", EXIT_JITTER_MS=3, EXIT_SLOW_MS=7)
    merge = builder.merge("side", "Merge side")
    builder.tag("v1", root)

    # main changed the delays, the side branch the crash rate: the merge keeps both.
    expected = {"EXIT_SLOW_MS": 7, "EXIT_JITTER_MS": 3, "EXIT_CRASH_PERCENT": 50}
    assert builder.knobs == {**DEFAULT_KNOBS, **expected}
    assert len(_git(builder.path, "rev-list", "--parents", "-n1", merge).split()) == 3
    assert "#define EXIT_CRASH_PERCENT 50" in _git(builder.path, "show", f"{merge}:config.h")
    assert _git(builder.path, "rev-parse", "v1") == root
    assert _git(builder.path, "log", "-1", "--format=%an", f"{merge}^2") == "Side Dev"
    with pytest.raises(ValueError, match="unknown minipy knob"):
        builder.commit("Typo", EXIT_CRASH=1)
    with pytest.raises(ValueError, match="change no file"):
        builder.commit("Nothing", touch=None)


def test_merge_history_culprit_is_the_side_commit(tmp_path: Path, script: Path) -> None:
    history = merge_history(tmp_path / "repo")
    repo = history.path
    merge = history.first_parent_culprit
    assert merge != history.culprit
    assert merge in history.mainline
    assert history.culprit not in history.mainline
    assert history.culprit in history.shas

    crash = -signal.SIGABRT
    assert _run(_build(repo, f"{history.culprit}^"), script).returncode == 0
    assert _run(_build(repo, history.culprit), script).returncode == crash
    assert _run(_build(repo, f"{merge}^1"), script).returncode == 0
    assert _run(_build(repo, merge), script).returncode == crash
    assert _run(_build(repo, history.bad), script).returncode == crash


@pytest.fixture
def demo(tmp_path: Path) -> GeneratedHistory:
    return demo_history(tmp_path / "demo")


def test_demo_story(demo: GeneratedHistory, script: Path) -> None:
    repo = demo.path
    assert len(demo.mainline) == 60
    assert (demo.good, demo.bad) == (demo.mainline[0], demo.mainline[-1])
    position = demo.mainline.index(demo.culprit)
    assert 30 <= position <= 50
    message = _git(repo, "log", "-1", "--format=%B", demo.culprit)
    assert "bpo-9901" in message
    assert len(set(_git(repo, "log", "--format=%an", "main").splitlines())) >= 5

    merges = _git(repo, "rev-list", "--merges", "main").split()
    assert len(merges) == 1
    assert demo.mainline.index(merges[0]) < position
    side = _git(repo, "diff", "--name-only", f"{merges[0]}^1", merges[0]).split()
    assert side == ["Doc/notes.txt"]

    assert len(demo.broken) == 2
    assert all(abs(demo.mainline.index(sha) - position) > 3 for sha in demo.broken)
    for sha in demo.broken:
        assert _make(repo, sha).returncode != 0

    assert _run(_build(repo, demo.good), script).returncode == 0
    assert _run(_build(repo, f"{demo.culprit}^"), script).returncode == 0
    crashed = _run(_build(repo, demo.culprit), script)
    assert crashed.returncode == -signal.SIGABRT
    assert FATAL_GIL in crashed.stderr
    assert _run(_build(repo, demo.bad), script).returncode == -signal.SIGABRT


def test_flaky_demo_crashes_sometimes(tmp_path: Path, script: Path) -> None:
    demo = demo_history(tmp_path / "demo", flaky=True)
    assert demo.shas != demo_history(tmp_path / "steady").shas
    python = _build(demo.path, demo.bad)

    results = [_run(python, script).returncode for _ in range(60)]

    assert 5 <= results.count(-signal.SIGABRT) <= 40
    assert results.count(0) + results.count(-signal.SIGABRT) == 60
