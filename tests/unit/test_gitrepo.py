"""The git layer: plain git through proc.capture, with timeouts, few processes, read only."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from finbisect.errors import GitError
from finbisect.repo import git, gitrepo
from finbisect.repo.gitrepo import UserRepo, Workspace, locked_workspace
from finbisect.runs import capture as proc
from finbisect.testing.histories import GeneratedHistory, merge_history
from finbisect.testing.minipy import HistoryBuilder
from tests.processes import gone


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def history(tmp_path: Path) -> GeneratedHistory:
    return merge_history(tmp_path / "repo")


@pytest.fixture
def workspace(tmp_path: Path, history: GeneratedHistory) -> Iterator[Workspace]:
    with locked_workspace(tmp_path / "cache", UserRepo(history.path)) as ws:
        ws.refresh([history.good, history.bad])
        yield ws


@pytest.fixture
def git_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command the git layer runs from now on."""
    calls: list[list[str]] = []
    real = proc.capture

    def counting(argv: list[str], **kwargs: object) -> proc.CaptureResult:
        calls.append(list(argv))
        return real(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(proc, "capture", counting)
    return calls


def test_user_repo_must_be_the_repository_itself(tmp_path: Path, history: GeneratedHistory) -> None:
    user = UserRepo(history.path)
    assert user.path == history.path.resolve()
    assert user.git_dir == (history.path / ".git").resolve()
    assert UserRepo(history.path / ".git").path == user.path
    (history.path / "sub").mkdir()
    with pytest.raises(GitError, match="not a git repository"):
        UserRepo(history.path / "sub")
    with pytest.raises(GitError, match="not a directory"):
        UserRepo(tmp_path / "nowhere")


def test_bare_repository(tmp_path: Path, history: GeneratedHistory) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(history.path), str(bare)], check=True)
    user = UserRepo(bare)
    assert user.path == user.git_dir == bare.resolve()
    assert user.resolve("main") == history.bad


def test_resolve(history: GeneratedHistory) -> None:
    user = UserRepo(history.path)
    assert user.resolve("main") == history.bad
    assert user.resolve(history.bad[:8]) == history.bad
    with pytest.raises(GitError, match="unknown revision 'nope'"):
        user.resolve("nope")
    with pytest.raises(GitError, match="not a revision"):
        user.resolve("--all")


def test_commit_fields_and_parents(workspace: Workspace, history: GeneratedHistory) -> None:
    merge = history.first_parent_culprit
    commit = workspace.commit(merge)
    assert commit.sha == merge
    assert commit.subject == "Merge branch 'feature' into main"
    assert commit.author == "Minipy Developer <dev@minipy.example.org>"
    assert commit.date.endswith("+00:00")
    assert commit.date.startswith("2024-01-01T")
    assert commit.message == "Merge branch 'feature' into main\n"
    parents = workspace.parents(merge)
    assert parents == [
        _git(history.path, "rev-parse", f"{merge}^1"),
        _git(history.path, "rev-parse", f"{merge}^2"),
    ]
    assert workspace.parents(history.good) == []


def test_commit_message_is_kept_verbatim(tmp_path: Path) -> None:
    builder = HistoryBuilder(tmp_path / "repo")
    body = "Body with trailing spaces   \n\n\nand blank lines.\n\nCo-authored-by: X <x@example.org>"
    builder.commit("First", author="Zoë Ünicode <z@example.org>")
    sha = builder.commit("  gh-1: Second  ", body=body)
    with locked_workspace(tmp_path / "cache", UserRepo(builder.path)) as ws:
        ws.refresh([sha])
        commit = ws.commit(sha)
        first = ws.commit(ws.parents(sha)[0])
    assert commit.subject == "gh-1: Second"
    raw = subprocess.run(
        ["git", "cat-file", "commit", sha], cwd=builder.path, capture_output=True, check=True
    ).stdout.decode()
    assert commit.message == raw.split("\n\n", 1)[1]
    assert commit.message.endswith("Co-authored-by: X <x@example.org>\n")
    assert first.author == "Zoë Ünicode <z@example.org>"


def test_commits_are_read_in_one_process_and_cached(
    workspace: Workspace, history: GeneratedHistory, git_calls: list[list[str]]
) -> None:
    shas = list(history.shas)
    commits = workspace.commits([*reversed(shas), shas[0]])
    assert [c.sha for c in commits] == [*reversed(shas), shas[0]]
    assert len(git_calls) == 1
    for sha in shas:
        assert workspace.commit(sha).sha == sha
        workspace.parents(sha)
    assert len(git_calls) == 1


def test_two_names_of_one_commit(workspace: Workspace, history: GeneratedHistory) -> None:
    commits = workspace.commits([history.bad, "refs/finbisect/user/heads/main", history.good])
    assert [c.sha for c in commits] == [history.bad, history.bad, history.good]


def test_an_unknown_commit_is_a_git_error(workspace: Workspace) -> None:
    with pytest.raises(GitError, match="cannot read commit 0000000"):
        workspace.commit("0" * 40)


def test_plan_both_directions(workspace: Workspace, history: GeneratedHistory) -> None:
    regression = workspace.plan(history.good, history.bad, first_parent=False)
    assert regression.graph.shas[-1] == history.bad
    assert set(regression.graph.shas) == set(history.shas) - {history.good}
    fix = workspace.plan(history.bad, history.good, first_parent=True)
    assert fix.kind.value == "fix"
    assert fix.graph.shas == history.mainline[1:]


def test_trees_files_and_blobs(workspace: Workspace, history: GeneratedHistory) -> None:
    tree = workspace.worktree("build-x")
    assert workspace.worktree("build-x") == tree
    workspace.checkout(history.culprit, tree)
    assert workspace.tree_head(tree) == history.culprit
    assert workspace.tree_head(tree.parent) is None
    assert workspace.changed_files(history.good, history.good) == []
    changed = workspace.changed_files(history.good, history.bad)
    assert changed == sorted(
        _git(history.path, "diff", "--name-only", history.good, history.bad).split()
    )
    config = workspace.show(history.bad, "config.h")
    assert config == _git(history.path, "show", f"{history.bad}:config.h") + "\n"
    assert workspace.show(history.bad, "nope") is None
    assert workspace.show(history.bad, "Doc") is None  # a folder is not a file
    ids = workspace.blob_ids(history.bad, ["config.h", "Make*", "Doc/*.txt", "Misc/*"])
    assert set(ids) == {"config.h", "Makefile", "Doc/notes.txt", "Misc/NEWS"}
    assert ids["config.h"] == _git(history.path, "rev-parse", f"{history.bad}:config.h")


def test_a_stuck_git_is_killed_and_reported(
    tmp_path: Path, workspace: Workspace, history: GeneratedHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A git that never answers (blocked on a lock, say), with a child of its own.
    fake = tmp_path / "bin"
    fake.mkdir()
    pids = tmp_path / "stuck-pids"
    (fake / "git").write_text(
        f"#!/bin/sh\necho $$ >> {pids}\nsleep 1000 &\necho $! >> {pids}\nwait\n"
    )
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(git, "PLUMBING_TIMEOUT", 1.0)
    with pytest.raises(GitError, match=r"git diff-tree took longer than 1 s .* was killed"):
        workspace.changed_files(history.good, history.bad)
    for pid in map(int, pids.read_text().split()):
        assert gone(pid)


def test_git_missing_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GitError, match=r"cannot run git.*PATH"):
        UserRepo(repo)


def test_git_dir_in_the_environment_cannot_redirect_a_checkout(
    tmp_path: Path, workspace: Workspace, history: GeneratedHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As inside a git hook: GIT_DIR and GIT_INDEX_FILE name the user's repository."""
    before = _git(history.path, "rev-parse", "HEAD")
    monkeypatch.setenv("GIT_DIR", str(history.path / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(history.path / ".git" / "index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(history.path))
    tree = workspace.worktree("build-y")
    workspace.checkout(history.good, tree)
    assert workspace.tree_head(tree) == history.good
    assert (
        UserRepo(tmp_path / "cache" / "repos" / workspace.root.name / "clone").path.name == "clone"
    )
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert _git(history.path, "rev-parse", "HEAD") == before
    assert _git(history.path, "status", "--porcelain") == ""


def test_a_killed_clone_leaves_no_half_clone(
    tmp_path: Path, history: GeneratedHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clone that has written part of its repository, then stops making progress.
    real_git = shutil.which("git")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = clone ]; then\n'
        '    for last in "$@"; do :; done\n'
        '    mkdir -p "$last/.git/objects"; exec sleep 1000\n'
        "fi\n"
        f'exec {real_git} "$@"\n'
    )
    (fake / "git").chmod(0o755)
    user = UserRepo(history.path)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{path}")
    monkeypatch.setattr(gitrepo, "FETCH_TIMEOUT", 1.0)
    with locked_workspace(tmp_path / "cache", user) as ws:
        with pytest.raises(GitError, match="cannot refresh finbisect's clone: git clone took"):
            ws.refresh([history.bad])
        assert not ws.clone_dir.exists()
        monkeypatch.setenv("PATH", path)
        ws.refresh([history.bad])  # the half-made clone is removed and made again
        assert ws.commit(history.bad).sha == history.bad
        assert not ws.clone_dir.with_name("clone.partial").exists()
