"""Everything finbisect asks of git repositories: the user's, read only, and its own clone.

Commands run through `repo.git` (under a timeout, killed with their process
group: a git blocked on a lock is a `GitError`, not a hung hunt).

The user's repository is only ever *read*, with optional locks disabled so
not even its index is refreshed. Checkouts and builds happen in finbisect's
own clone under the cache directory, created from the user's repository
(objects hard-linked, which git never rewrites in place) and refreshed from
it at the start of every hunt. Each command names its repository by its
working directory alone: the variables with which an environment can point
git at another repository (GIT_DIR, GIT_INDEX_FILE, ...: `git rev-parse
--local-env-vars`) are removed, so a GIT_DIR inherited from a hook cannot
turn a checkout in our clone into a write to the user's repository.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import os
import posixpath
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from finbisect.errors import GitError, UsageError
from finbisect.models import Commit, HuntKind
from finbisect.repo import git as gitcmd
from finbisect.repo.git import CHECKOUT_TIMEOUT, FETCH_TIMEOUT, PLUMBING_TIMEOUT
from finbisect.search.strategy import CandidateGraph

__all__ = [
    "CHECKOUT_TIMEOUT",
    "FETCH_TIMEOUT",
    "PLUMBING_TIMEOUT",
    "Hunt",
    "UserRepo",
    "Workspace",
    "locked_workspace",
]

_USER_REFS = "refs/finbisect/user"  # where the user's refs are mirrored in our clone
_BUNDLE_REFS = "refs/finbisect/bundle"  # the commits a bundle for a cluster's workers holds
# The first commit of CPython's history (Guido van Rossum, "Initial revision", 1990): a
# repository that has it is CPython's (cherry_picker checks for it the same way).
CPYTHON_ROOT = "7f777ed95a19224294949e1b4ce56bbffcb1fe9f"
# One commit of `git log -z --format=_COMMIT_FORMAT`: NUL-separated fields, NUL-terminated.
_COMMIT_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%B")
_COMMIT_FORMAT = "%x00".join(_COMMIT_FIELDS)
_COMMIT_BATCH = 500  # shas per `git log` command line


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
        path = path.resolve()
        # `path` itself must be the repository (its top level, or a bare or .git
        # directory): git must not find one in a parent directory.
        result = gitcmd.run_git(
            "rev-parse", "--absolute-git-dir", "--is-bare-repository", "--is-inside-git-dir",
            cwd=path, env={"GIT_CEILING_DIRECTORIES": str(path.parent)},
        )  # fmt: skip
        lines = result.stdout.splitlines()
        if not result.ok or len(lines) != 3:
            reason = gitcmd.reason(result)
            detail = "" if "not a git repository" in reason else f" ({reason})"
            raise GitError(f"not a git repository: {path}{detail}")
        git_dir, bare, inside_git_dir = lines
        self.git_dir = Path(git_dir).resolve()
        if bare == "true":
            self.path = self.git_dir
        elif inside_git_dir == "true":  # PATH is the .git directory of a checkout
            self.path = self.git_dir.parent
        else:
            self.path = path

    def resolve(self, rev: str) -> str:
        """Full sha of the commit `rev` names in the user's repository."""
        if not rev or rev.startswith("-"):
            raise GitError(f"not a revision: {rev!r}")
        result = gitcmd.run_git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
            cwd=self.path,
        )  # fmt: skip
        if not result.ok:
            raise GitError(f"unknown revision {rev!r} in {self.path}")
        return result.stdout.strip()


class Workspace:
    """finbisect's own clone of the user's repository; the only tree it changes."""

    def __init__(self, root: Path, user: UserRepo) -> None:
        self.root = root  # the cache entry: clone/, logs/, lock
        self.clone_dir = root / "clone"
        self.user = user
        self._commits: dict[str, tuple[Commit, tuple[str, ...]]] = {}  # sha: (commit, parents)

    def _git(self, *args: str, timeout: float | None = None, input: str | None = None) -> str:
        return gitcmd.git(*args, cwd=self.clone_dir, timeout=timeout, input=input)

    def refresh(self, shas: list[str]) -> None:
        """Create or update the clone so that it has every commit in `shas`."""
        source = str(self.user.git_dir)
        try:
            if (self.clone_dir / ".git").is_dir() and not self._usable():
                self._forget_clone()  # damaged (a .git without HEAD, say): start again
            if not (self.clone_dir / ".git").is_dir():
                self._clone(source)
            self._git(
                "fetch", "--quiet", "--force", "--no-tags", "--prune", "--no-write-fetch-head",
                source, f"+refs/*:{_USER_REFS}/*", f"+HEAD:{_USER_REFS}-HEAD",
                timeout=FETCH_TIMEOUT,
            )  # fmt: skip
            for sha in self._missing_commits(shas):  # reachable only from the reflog, say
                self._git(
                    "fetch", "--quiet", "--no-write-fetch-head", source, sha, timeout=FETCH_TIMEOUT
                )
        except GitError as exc:
            raise GitError(f"cannot refresh finbisect's clone: {exc.message}") from None

    def _usable(self) -> bool:
        return gitcmd.run_git("rev-parse", "--verify", "--quiet", "HEAD", cwd=self.clone_dir).ok

    def _forget_clone(self) -> None:
        """Remove a damaged clone and the build trees that are its work trees."""
        shutil.rmtree(self.clone_dir, ignore_errors=True)
        for tree in self.root.glob("build-*"):
            if tree.is_dir():
                shutil.rmtree(tree, ignore_errors=True)
            else:
                tree.unlink(missing_ok=True)  # a tree's configure stamp

    def _clone(self, source: str) -> None:
        """Clone next to the final place, then rename: a killed clone leaves no half clone."""
        partial = self.clone_dir.with_name(self.clone_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        if self.clone_dir.exists():  # a clone without .git: left by an older version
            shutil.rmtree(self.clone_dir)
        partial.parent.mkdir(parents=True, exist_ok=True)
        gitcmd.git(
            "clone", "--quiet", "--no-checkout", "--", source, str(partial),
            cwd=partial.parent, timeout=FETCH_TIMEOUT,
        )  # fmt: skip
        partial.rename(self.clone_dir)

    def _missing_commits(self, shas: Iterable[str]) -> list[str]:
        """Those of `shas` that are not commits in the clone (one `git cat-file`)."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return []
        out = self._git(
            "cat-file",
            "--batch-check=%(objecttype)",
            input="".join(f"{sha}\n" for sha in wanted),
        )
        types = out.splitlines()
        return [sha for sha, kind in zip(wanted, types, strict=True) if kind != "commit"]

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
        lines = self._git("rev-list", *args, f"{old}..{new}").splitlines()
        shas, parents = [], {}
        for line in lines:
            sha, *its_parents = line.split()
            shas.append(sha)
            parents[sha] = its_parents
        if not shas or shas[-1] != new:
            raise GitError(f"no ancestry path from {old[:12]} to {new[:12]}")
        return Hunt(kind=kind, good=good, bad=bad, graph=CandidateGraph.from_parents(shas, parents))

    def _is_ancestor(self, a: str, b: str) -> bool:
        result = gitcmd.run_git("merge-base", "--is-ancestor", a, b, cwd=self.clone_dir)
        if result.returncode == 1:
            return False
        if not result.ok:
            raise GitError(f"git merge-base failed: {gitcmd.reason(result)}")
        return True

    def commit(self, sha: str) -> Commit:
        """Subject, author, date and message of `sha` (read once per sha, then cached)."""
        return self._load_commits([sha])[0][0]

    def commits(self, shas: Iterable[str]) -> list[Commit]:
        """`commit` of each of `shas`; those not cached yet are read with one `git log`."""
        return [commit for commit, _ in self._load_commits(list(shas))]

    def is_cpython(self) -> bool:
        """Are these CPython's own commits, so that github.com/python/cpython has them?

        Yes when the user's repository has CPython's first commit or a remote on
        python/cpython; not for generated or replayed histories (the demo, Debian's).
        """
        if not self._missing_commits([CPYTHON_ROOT]):
            return True
        remotes = gitcmd.run_git("config", "--get-regexp", r"^remote\..*\.url$", cwd=self.user.path)
        return "python/cpython" in remotes.stdout

    def parents(self, sha: str) -> list[str]:
        """Full shas of the parents of `sha`, first parent first (none for a root commit)."""
        return list(self._load_commits([sha])[0][1])

    def _load_commits(self, shas: list[str]) -> list[tuple[Commit, tuple[str, ...]]]:
        """(commit, parents) of each of `shas`, cached by full sha."""
        missing = [sha for sha in dict.fromkeys(shas) if sha not in self._commits]
        for start in range(0, len(missing), _COMMIT_BATCH):
            batch = missing[start : start + _COMMIT_BATCH]
            records = self._read_commits(batch)
            if len(records) != len(batch):  # two names of one commit: ask one by one
                records = [self._read_commits([sha])[0] for sha in batch]
            for sha, record in zip(batch, records, strict=True):
                self._commits[record[0].sha] = record
                self._commits[sha] = record
        return [self._commits[sha] for sha in shas]

    def _read_commits(self, names: list[str]) -> list[tuple[Commit, tuple[str, ...]]]:
        # --no-walk=unsorted: the commits in the order named, each once.
        result = gitcmd.run_git(
            "log", "--no-walk=unsorted", "-z", "--no-show-signature",
            f"--format={_COMMIT_FORMAT}", "--end-of-options", *names,
            cwd=self.clone_dir,
        )  # fmt: skip
        if not result.ok:
            raise GitError(f"cannot read commit {names[0][:12]}: {gitcmd.reason(result)}")
        fields = result.stdout.split("\0")  # every field NUL-terminated: one more, empty
        n = len(_COMMIT_FIELDS)
        records = []
        for i in range(0, len(fields) - 1, n):
            sha, parents, name, email, date, message = fields[i : i + n]
            commit = Commit(
                sha=sha,
                subject=message.split("\n", 1)[0].strip(),
                author=f"{name} <{email}>",
                date=date,
                message=message,
            )
            records.append((commit, tuple(parents.split())))
        return records

    def worktree(self, name: str) -> Path:
        """A persistent work tree of the clone (e.g. one build tree per configuration)."""
        path = self.root / name
        if (path / ".git").is_file():
            return path
        try:
            self._git("worktree", "prune")
            if path.exists():  # left half-made by an interrupted run
                shutil.rmtree(path)
            self._git(
                "worktree", "add", "--quiet", "--detach", "--no-checkout", str(path),
                timeout=CHECKOUT_TIMEOUT,
            )  # fmt: skip
        except GitError as exc:
            raise GitError(f"cannot create work tree {path}: {exc.message}") from None
        return path

    def checkout(self, sha: str, tree: Path) -> None:
        """Detach `tree` at `sha`, keeping untracked build products for make."""
        result = gitcmd.run_git(
            "checkout", "--quiet", "--force", "--detach", sha, cwd=tree, timeout=CHECKOUT_TIMEOUT
        )
        if not result.ok:
            raise GitError(f"checkout of {sha[:12]} failed: {gitcmd.reason(result)}")

    def tree_head(self, tree: Path) -> str | None:
        """The commit checked out in one of our work trees, if any."""
        result = gitcmd.run_git("rev-parse", "--verify", "--quiet", "HEAD", cwd=tree)
        return result.stdout.strip() if result.ok else None

    def changed_files(self, a: str, b: str) -> list[str]:
        """Paths that differ between commits `a` and `b`."""
        if a == b:
            return []
        out = self._git("diff-tree", "-r", "-z", "--name-only", "--no-renames", a, b)
        return [path for path in out.split("\0") if path]

    def diff(self, sha: str) -> str:
        """The unified diff `sha` makes against its first parent (its whole tree for a root)."""
        return self._git("show", "--format=", "--no-color", "--no-ext-diff", sha)

    def show(self, sha: str, path: str) -> str | None:
        """The text of file `path` at `sha`, or None if there is no such file there."""
        result = gitcmd.run_git("cat-file", "blob", f"{sha}:{path}", cwd=self.clone_dir)
        return result.stdout if result.ok else None

    def bundle(self, path: Path, shas: Iterable[str]) -> list[str]:
        """Write a `git bundle` of the history of `shas` to `path` (for a cluster's workers);
        the refs of our clone that name them (a worker that can read the clone fetches them).

        A bundle carries refs, not bare commits: each sha is named by a ref of our clone.
        """
        refs = []
        for sha in dict.fromkeys(shas):
            refs.append(f"{_BUNDLE_REFS}/{sha}")
            self._git("update-ref", refs[-1], sha)
        self._git("bundle", "create", "--quiet", str(path), *refs, timeout=FETCH_TIMEOUT)
        return refs

    def blob_ids(self, sha: str, patterns: list[str]) -> dict[str, str]:
        """Blob ids at `sha` of the files matching `patterns` (fnmatch, one level).

        One `git ls-tree` lists every folder the patterns name.
        """
        folders = sorted({posixpath.dirname(p) for p in patterns})
        pathspecs = [f"{folder}/" if folder else "./" for folder in folders]
        out = self._git("ls-tree", "-z", sha, "--", *pathspecs)
        ids = {}
        for entry in filter(None, out.split("\0")):
            meta, path = entry.split("\t", 1)
            _, kind, blob = meta.split()
            if kind == "blob" and any(fnmatch.fnmatchcase(path, p) for p in patterns):
                ids[path] = blob
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
