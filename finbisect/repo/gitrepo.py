"""Everything finbisect asks of git, through GitPython.

The user's repository is only ever *read*, with optional locks disabled so
not even its index is refreshed. Checkouts and builds happen in finbisect's
own clone under the cache directory, created from the user's repository
(objects hard-linked, which git never rewrites in place) and refreshed from
it at the start of every hunt.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import os
import posixpath
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from finbisect.errors import GitError, UsageError
from finbisect.models import Commit, HuntKind
from finbisect.search.strategy import CandidateGraph

__all__ = ["Hunt", "UserRepo", "Workspace", "locked_workspace"]

# Read-only access to the user's repository: no index refresh, no gc, no prompts.
_READ_ONLY_ENV = {
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTO_GC": "0",
}
_USER_REFS = "refs/finbisect/user"  # where the user's refs are mirrored in our clone
# The first commit of CPython's history (Guido van Rossum, "Initial revision", 1990): a
# repository that has it is CPython's (cherry_picker checks for it the same way).
CPYTHON_ROOT = "7f777ed95a19224294949e1b4ce56bbffcb1fe9f"


def _git_error(exc: git.GitCommandError) -> str:
    lines = [ln.strip() for ln in str(exc.stderr or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else str(exc)
    return re.sub(r"^(fatal|error):\s*", "", text.strip("'\""))


@dataclass(frozen=True, kw_only=True)
class Hunt:
    """The resolved question: direction, ends, and the candidates between them."""

    kind: HuntKind
    good: str
    bad: str
    graph: CandidateGraph  # oldest first; the new end is the last candidate

    @property
    def bug_is_new(self) -> bool:
        """Does the symptom live on the newer side (a regression hunt)?"""
        return self.kind is HuntKind.REGRESSION

    @property
    def old(self) -> str:
        return self.good if self.kind is HuntKind.REGRESSION else self.bad

    @property
    def new(self) -> str:
        return self.bad if self.kind is HuntKind.REGRESSION else self.good


class UserRepo:
    """The user's checkout, opened read-only."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise GitError(f"not a directory: {path}")
        try:
            repo = git.Repo(path, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitError(f"not a git repository: {path}") from None
        self.path = Path(repo.working_tree_dir or repo.git_dir).resolve()
        self.git_dir = Path(repo.git_dir).resolve()
        self.git = repo.git
        self.git.update_environment(**_READ_ONLY_ENV)

    def resolve(self, rev: str) -> str:
        """Full sha of the commit `rev` names in the user's repository."""
        if not rev or rev.startswith("-"):
            raise GitError(f"not a revision: {rev!r}")
        try:
            return str(
                self.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
            )
        except git.GitCommandError:
            raise GitError(f"unknown revision {rev!r} in {self.path}") from None


class Workspace:
    """finbisect's own clone of the user's repository; the only tree it changes."""

    def __init__(self, root: Path, user: UserRepo) -> None:
        self.root = root  # the cache entry: clone/, logs/, lock
        self.clone_dir = root / "clone"
        self.user = user
        self._repo: git.Repo | None = None

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = git.Repo(self.clone_dir)
            self._repo.git.update_environment(**_READ_ONLY_ENV)
        return self._repo

    def refresh(self, shas: list[str]) -> None:
        """Create or update the clone so that it has every commit in `shas`."""
        source = str(self.user.git_dir)
        try:
            if not (self.clone_dir / ".git").is_dir():
                self.clone_dir.parent.mkdir(parents=True, exist_ok=True)
                git.Repo.clone_from(
                    source, self.clone_dir, no_checkout=True, env=_READ_ONLY_ENV, quiet=True
                )
            self.repo.git.fetch(
                "--quiet", "--force", "--no-tags", "--prune", "--no-write-fetch-head",
                source, f"+refs/*:{_USER_REFS}/*", f"+HEAD:{_USER_REFS}-HEAD",
            )  # fmt: skip
            for sha in shas:
                if not self._has_commit(sha):  # reachable only from the reflog, say
                    self.repo.git.fetch("--quiet", "--no-write-fetch-head", source, sha)
        except git.GitCommandError as exc:
            raise GitError(f"cannot refresh finbisect's clone: {_git_error(exc)}") from None

    def _has_commit(self, sha: str) -> bool:
        try:
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
        except git.GitCommandError:
            return False
        return True

    def plan(self, good: str, bad: str, *, first_parent: bool) -> Hunt:
        """Direction from ancestry, and the ancestry path between the ends."""
        if self._is_ancestor(good, bad):
            kind = HuntKind.REGRESSION
            old, new = good, bad
        elif self._is_ancestor(bad, good):
            kind = HuntKind.FIX
            old, new = bad, good
        else:
            raise GitError(
                f"--good {good[:12]} and --bad {bad[:12]} are not ancestors of one another; "
                "bisect between a commit and one of its descendants"
            )
        args = ["--topo-order", "--reverse", "--parents", "--ancestry-path"]
        if first_parent:
            args.append("--first-parent")
        lines = self.repo.git.rev_list(*args, f"{old}..{new}").splitlines()
        shas, parents = [], {}
        for line in lines:
            sha, *its_parents = line.split()
            shas.append(sha)
            parents[sha] = its_parents
        if not shas or shas[-1] != new:
            raise GitError(f"no ancestry path from {old[:12]} to {new[:12]}")
        return Hunt(kind=kind, good=good, bad=bad, graph=CandidateGraph.from_parents(shas, parents))

    def _is_ancestor(self, a: str, b: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", a, b)
        except git.GitCommandError as exc:
            if exc.status == 1:
                return False
            raise GitError(f"git merge-base failed: {_git_error(exc)}") from None
        return True

    def commit(self, sha: str) -> Commit:
        c = self.repo.commit(sha)
        message = c.message if isinstance(c.message, str) else c.message.decode(errors="replace")
        return Commit(
            sha=c.hexsha,
            subject=message.split("\n", 1)[0].strip(),
            author=f"{c.author.name} <{c.author.email}>",
            date=c.authored_datetime.isoformat(),
            message=message,
        )

    def parents(self, sha: str) -> list[str]:
        """The commit's parents, first parent first."""
        return [parent.hexsha for parent in self.repo.commit(sha).parents]

    def is_cpython(self) -> bool:
        """Are these CPython's own commits, so that github.com/python/cpython has them?

        Yes when the user's repository has CPython's first commit or a remote on
        python/cpython; not for generated or replayed histories (the demo, Debian's).
        """
        if self._has_commit(CPYTHON_ROOT):
            return True
        try:
            remotes = str(self.user.git.config("--get-regexp", r"^remote\..*\.url$"))
        except git.GitCommandError:  # no remotes at all
            return False
        return "python/cpython" in remotes

    def worktree(self, name: str) -> Path:
        """A persistent work tree of the clone (e.g. one build tree per configuration)."""
        path = self.root / name
        if (path / ".git").is_file():
            return path
        try:
            self.repo.git.worktree("prune")
            if path.exists():  # left half-made by an interrupted run
                shutil.rmtree(path)
            self.repo.git.worktree("add", "--quiet", "--detach", "--no-checkout", str(path))
        except git.GitCommandError as exc:
            raise GitError(f"cannot create work tree {path}: {_git_error(exc)}") from None
        return path

    def checkout(self, sha: str, tree: Path) -> None:
        """Detach `tree` at `sha`, keeping untracked build products for make."""
        worktree = git.Git(tree)
        worktree.update_environment(**_READ_ONLY_ENV)
        try:
            worktree.checkout("--quiet", "--force", "--detach", sha)
        except git.GitCommandError as exc:
            raise GitError(f"checkout of {sha[:12]} failed: {_git_error(exc)}") from None

    def tree_head(self, tree: Path) -> str | None:
        """The commit checked out in one of our work trees, if any."""
        try:
            return str(git.Git(tree).rev_parse("--verify", "--quiet", "HEAD"))
        except git.GitCommandError:
            return None

    def changed_files(self, a: str, b: str) -> list[str]:
        """Paths that differ between commits `a` and `b`."""
        if a == b:
            return []
        return str(self.repo.git.diff("--name-only", "--no-renames", a, b)).splitlines()

    def show(self, sha: str, path: str) -> str | None:
        """The text of `path` at `sha`, or None if it does not exist there."""
        try:
            return str(self.repo.git.show(f"{sha}:{path}"))
        except git.GitCommandError:
            return None

    def blob_ids(self, sha: str, patterns: list[str]) -> dict[str, str]:
        """Blob ids at `sha` of the files matching `patterns` (fnmatch, one level)."""
        folders = sorted({posixpath.dirname(p) for p in patterns})
        listing = []
        for folder in folders:
            args = [sha, "--", f"{folder}/"] if folder else [sha]
            listing += self.repo.git.ls_tree(*args).splitlines()
        ids = {}
        for line in listing:
            meta, path = line.split("\t", 1)
            if any(fnmatch.fnmatchcase(path, p) for p in patterns):
                ids[path] = meta.split()[2]
        return ids


def _entry_name(user: UserRepo) -> str:
    digest = hashlib.sha256(str(user.git_dir).encode()).hexdigest()[:12]
    return f"{user.path.name}-{digest}"


@contextmanager
def locked_workspace(cache_dir: Path, user: UserRepo) -> Iterator[Workspace]:
    """The cache entry for `user`, held exclusively for the duration of a hunt."""
    root = cache_dir / "repos" / _entry_name(user)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = (root / "lock").open("a+")
    except OSError as exc:
        raise UsageError(f"cannot use cache directory {cache_dir}: {exc.strerror}") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise UsageError(
                f"another finbisect hunt ({holder}) is using {root}; "
                "wait for it to finish or pass a different --cache-dir"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        try:
            yield Workspace(root, user)
        finally:
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)
