"""Evidence at the answer: a hunt through a small C history reruns the first bad revision
under gdb and reports its stacks, and whether the culprit changes a function on them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from finbisect.runs import procfs, stacks
from tests.conftest import Hunt

pytestmark = [
    pytest.mark.usefixtures("leftovers"),
    pytest.mark.skipif(not procfs.supported(), reason="no /proc syscall view on this system"),
]

needs_gdb = pytest.mark.skipif(stacks.gdb_path() is None, reason="gdb is not installed")

# "python" holds the GIL while finalizing, and waits for the daemon thread's lock.
PROGRAM = r"""
#include <pthread.h>
#include <stddef.h>
static pthread_mutex_t gil = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t heads = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t ready;

static void take_gil(void) { pthread_mutex_lock(&gil); }

static void *daemon_thread(void *arg)
{
    pthread_mutex_lock(&heads);
    pthread_barrier_wait(&ready);
%(daemon)s
    pthread_mutex_unlock(&heads);
    return arg;
}

static void finalize_runtime(void)
{
%(finalize)s
    pthread_mutex_lock(&heads);
    pthread_mutex_unlock(&heads);
}

int main(void)
{
    pthread_t t;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_create(&t, NULL, daemon_thread, NULL);
    take_gil();
    pthread_barrier_wait(&ready);
    finalize_runtime();
    return 0;
}
"""
MAKEFILE = "python: prog.c\n\tcc -g -O0 -pthread -o python prog.c\n"
CULPRIT = 3


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}  # fmt: skip
    done = subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        cwd=repo, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def _history(repo: Path, symptom: str, commits: int = 6, *, fix: bool = False) -> list[str]:
    """Commit CULPRIT makes the exit deadlock (hang) or crash in the function it changes
    (`fix`: commits before CULPRIT do, and CULPRIT mends it)."""
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "Makefile").write_text(MAKEFILE)
    shas = []
    for i in range(commits):
        bad = (i >= CULPRIT) != fix
        daemon = "    take_gil();" if bad and symptom == "hang" else ""
        finalize = "    *(volatile int *)NULL = 0;" if bad and symptom == "crash" else ""
        (repo / "prog.c").write_text(PROGRAM % {"daemon": daemon, "finalize": finalize})
        (repo / "NEWS").write_text("".join(f"change {j}\n" for j in range(i + 1)))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"change {i}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return shas


@needs_gdb
def test_a_hang_hunt_carries_the_deadlocked_threads_at_the_culprit(
    hunt: Hunt, tmp_path: Path
) -> None:
    shas = _history(tmp_path / "repo", "hang")
    result = hunt(tmp_path / "repo", shas[0], shas[-1], "--symptom", "hang", "--runs", "1")
    assert result.exit_code == 0, result.stderr
    doc = result.json(tmp_path / "out.json")
    assert doc["culprit"]["sha"] == shas[CULPRIT]
    evidence = doc["evidence"]
    assert (evidence["sha"], evidence["kind"]) == (shas[CULPRIT], "hang")
    assert evidence["signature"].startswith("deadlocked: ")
    functions = [[f["function"] for f in t["c_frames"]] for t in evidence["threads"]]
    assert any("finalize_runtime" in fs for fs in functions)
    assert any("daemon_thread" in fs and "take_gil" in fs for fs in functions)
    assert all(t["python_frames"] == [] for t in evidence["threads"])
    assert evidence["log"]
    (line,) = evidence["culprit_frames"]
    assert line.startswith("the culprit changes daemon_thread(), frame #")
    assert line.endswith("of thread 2")
    assert line in result.stdout
    markdown = tmp_path / "out.md"
    again = hunt(tmp_path / "repo", shas[0], shas[-1], "--symptom", "hang", "--runs", "1",
                 "--markdown", str(markdown))  # fmt: skip
    assert again.exit_code == 0, again.stderr
    text = markdown.read_text()
    assert "<details>" in text
    assert line in text


@needs_gdb
def test_a_hang_caught_by_the_hunt_is_the_evidence_without_a_rerun(
    hunt: Hunt, tmp_path: Path, cache: Path
) -> None:
    shas = _history(tmp_path / "repo", "hang")
    result = hunt(tmp_path / "repo", shas[0], shas[-1], "--symptom", "hang", "--runs", "1")
    assert result.exit_code == 0, result.stderr
    evidence = result.json(tmp_path / "out.json")["evidence"]
    assert evidence["sha"] == shas[CULPRIT]
    # The stacks are those of the hunt's own hung run at the culprit: nothing ran again
    # (a hang that is no deadlock would have cost the whole --timeout once more).
    assert Path(evidence["log"]).name.startswith(f"run-{shas[CULPRIT][:12]}-")
    assert not list(cache.glob("repos/*/hunts/*/evidence-*.log"))


@needs_gdb
def test_a_crash_hunt_carries_the_crashing_frame_at_the_culprit(hunt: Hunt, tmp_path: Path) -> None:
    shas = _history(tmp_path / "repo", "crash")
    result = hunt(tmp_path / "repo", shas[0], shas[-1], "--symptom", "crash", "--runs", "1")
    assert result.exit_code == 0, result.stderr
    evidence = result.json(tmp_path / "out.json")["evidence"]
    assert (evidence["sha"], evidence["kind"]) == (shas[CULPRIT], "crash")
    assert evidence["signature"].startswith("killed by SIGSEGV: main thread in finalize_runtime")
    assert evidence["culprit_frames"] == [
        "the culprit changes finalize_runtime(), frame #0 of the main thread"
    ]


@needs_gdb
def test_a_fix_hunt_takes_evidence_at_the_fixing_commits_parent(hunt: Hunt, tmp_path: Path) -> None:
    shas = _history(tmp_path / "repo", "crash", fix=True)
    result = hunt(tmp_path / "repo", shas[-1], shas[0], "--symptom", "crash", "--runs", "1")
    assert result.exit_code == 0, result.stderr
    doc = result.json(tmp_path / "out.json")
    assert (doc["hunt"], doc["culprit"]["sha"]) == ("fix", shas[CULPRIT])
    assert doc["evidence"]["sha"] == shas[CULPRIT - 1]  # the last revision with the bug
    assert doc["evidence"]["culprit_frames"] == [
        "the culprit changes finalize_runtime(), frame #0 of the main thread"
    ]


def test_no_evidence_skips_the_rerun(hunt: Hunt, tmp_path: Path) -> None:
    shas = _history(tmp_path / "repo", "crash", commits=5)
    result = hunt(tmp_path / "repo", shas[0], shas[-1], "--symptom", "crash", "--runs", "1",
                  "--no-evidence")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = result.json(tmp_path / "out.json")
    assert "evidence" not in doc
    assert "evidence_note" not in doc


def test_without_gdb_the_hunt_succeeds_with_one_line_of_advice(
    hunt: Hunt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shas = _history(tmp_path / "repo", "crash", commits=5)
    bin_dir = tmp_path / "bin"  # every program on PATH but gdb
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            target = bin_dir / entry.name
            if entry.name != "gdb" and not target.exists() and os.access(entry, os.X_OK):
                target.symlink_to(entry)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert stacks.gdb_path() is None
    result = hunt(tmp_path / "repo", shas[0], shas[-1], "--symptom", "crash", "--runs", "1")
    assert result.exit_code == 0, result.stderr
    doc = result.json(tmp_path / "out.json")
    assert doc["culprit"]["sha"] == shas[CULPRIT]
    assert "evidence" not in doc
    assert "apt install gdb" in doc["evidence_note"]
    assert "apt install gdb" in result.stdout + result.stderr
