"""minipy: small, real git histories of a tiny C "interpreter" to bisect.

The generated repository holds a C99 program and a Makefile; ``make`` builds
``./python``, which is run as ``./python /abs/path/repro.py`` like CPython. What
it does *at exit* depends on the knobs in ``config.h`` (see ``DEFAULT_KNOBS``),
which the history changes from commit to commit:

- ``EXIT_CRASH_PERCENT`` (0-100): abort with ``Fatal Python error:
  pthread_mutex_destroy(gil_mutex) failed`` in that share of runs (random per run).
- ``EXIT_HANG``: fork a child that forks a grandchild; all three sleep forever.
- ``EXIT_ERROR``: ``RuntimeError: can't create new thread at interpreter
  shutdown`` on stderr, exit status 1.
- ``UNRELATED_CRASH``: ``Fatal Python error: Segmentation fault`` and SIGSEGV,
  *instead of* any of the above (a crash a ``--match gil_mutex`` must not count).
- ``EXIT_SLOW_MS`` / ``EXIT_JITTER_MS``: sleep that long (plus uniform jitter)
  first, at every exit.
- ``BROKEN_BUILD``: ``#error "gil.c: broken at this revision"``; the revision
  does not build.

Two environment variables make its runs reproducible and traceable for tests
(minipy_trace.py). The histories tests and the demo bisect are in histories.py.

Hashes are deterministic: fixed identities, commit N (in creation order) dated
2024-01-01 + N hours, git run without the user's global or system config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from finbisect.errors import GitError
from finbisect.runs import capture as proc

__all__ = ["DEFAULT_KNOBS", "NOTES", "HistoryBuilder", "check_knobs"]

DEFAULT_KNOBS: Mapping[str, int] = MappingProxyType(
    {
        "BROKEN_BUILD": 0,
        "EXIT_CRASH_PERCENT": 0,
        "EXIT_ERROR": 0,
        "EXIT_HANG": 0,
        "EXIT_JITTER_MS": 0,
        "EXIT_SLOW_MS": 0,
        "UNRELATED_CRASH": 0,
    }
)

_BOOLEAN_KNOBS = frozenset({"BROKEN_BUILD", "EXIT_ERROR", "EXIT_HANG", "UNRELATED_CRASH"})

_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
_COMMITTER = ("Minipy Release Bot", "bot@minipy.example.org")
_DEFAULT_AUTHOR = "Minipy Developer <dev@minipy.example.org>"
_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*$")
_DEFINE_RE = re.compile(r"^#define (?P<name>[A-Z_]+) (?P<value>-?\d+)$", re.MULTILINE)
_GIT_TIMEOUT = 60.0  # seconds per git command: they take milliseconds on these tiny trees
_NEWS = "Misc/NEWS"
NOTES = "Doc/notes.txt"

# The C sources and Makefile live beside this module (package data), as files
# an editor and a compiler can read directly.
_SOURCES = Path(__file__).with_name("minipy_src")


_STATIC_FILES: Mapping[str, str] = MappingProxyType(
    {
        ".gitignore": "python\n*.o\ncore\n",
        # Append-only logs: merging two branches keeps both sides' lines.
        ".gitattributes": f"{_NEWS} merge=union\n{NOTES} merge=union\n",
        **{name: (_SOURCES / name).read_text() for name in ("Makefile", "main.c", "gil.c")},
        "README": "minipy: a tiny interpreter whose exit behaviour is set by config.h.\n",
        _NEWS: "minipy NEWS\n===========\n",
        NOTES: "minipy notes\n============\n",
    }
)


def _render_config(knobs: Mapping[str, int]) -> str:
    lines = [
        "/* config.h: compile-time knobs of minipy; the history changes them. */",
        "#ifndef MINIPY_CONFIG_H",
        "#define MINIPY_CONFIG_H",
        *(f"#define {name} {knobs[name]}" for name in sorted(knobs)),
        "#endif",
    ]
    return "\n".join(lines) + "\n"


def _parse_config(text: str) -> dict[str, int]:
    knobs = dict(DEFAULT_KNOBS)
    for match in _DEFINE_RE.finditer(text):
        if match["name"] in knobs:
            knobs[match["name"]] = int(match["value"])
    return knobs


def check_knobs(knobs: Mapping[str, int]) -> None:
    for name, value in knobs.items():
        if name not in DEFAULT_KNOBS:
            known = ", ".join(sorted(DEFAULT_KNOBS))
            raise ValueError(f"unknown minipy knob {name!r} (known: {known})")
        if name in _BOOLEAN_KNOBS and value not in (0, 1):
            raise ValueError(f"{name} must be 0 or 1, not {value}")
        if name == "EXIT_CRASH_PERCENT" and not 0 <= value <= 100:
            raise ValueError(f"EXIT_CRASH_PERCENT must be within 0..100, not {value}")
        if value < 0:
            raise ValueError(f"{name} must not be negative, not {value}")


def _identity(author: str) -> tuple[str, str]:
    match = _AUTHOR_RE.match(author)
    if match is None:
        raise ValueError(f"author must look like 'Name <email>', not {author!r}")
    return match["name"], match["email"]


class HistoryBuilder:
    """Write a minipy history commit by commit into a new repository at ``path``.

    The initial files (sources, Makefile, ``.gitignore`` listing the build
    products, ``config.h`` with ``DEFAULT_KNOBS``) are written but not yet
    committed: the first ``commit()`` is the initial import.

    Merges: ``merge()`` resolves ``config.h`` knob by knob (three-way, against
    the merge base): a knob the merged branch changed takes its value, every
    other knob keeps the current branch's. ``Misc/NEWS`` and ``Doc/notes.txt``
    merge by union. Anything else that conflicts is an error.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        if self.path.exists() and any(self.path.iterdir()):
            raise ValueError(f"{self.path} exists and is not empty")
        self.path.mkdir(parents=True, exist_ok=True)
        self._count = 0
        # Hermetic: no user/system config (signing, hooks, autocrlf) can change the
        # hashes, and no GIT_DIR or GIT_INDEX_FILE from the caller can redirect git.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self._env.update(
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
            GIT_COMMITTER_NAME=_COMMITTER[0],
            GIT_COMMITTER_EMAIL=_COMMITTER[1],
        )
        # No template: the user's init.templateDir (hooks) stays out of it.
        self._git("init", "--quiet", "--initial-branch=main", "--template=")
        for name, text in _STATIC_FILES.items():
            self._write(name, text)
        self._knobs = dict(DEFAULT_KNOBS)
        self._write("config.h", _render_config(self._knobs))

    @property
    def knobs(self) -> Mapping[str, int]:
        """The knobs of the working tree (the current branch's last commit, or pending)."""
        return MappingProxyType(dict(self._knobs))

    @property
    def head(self) -> str:
        """Full sha of HEAD."""
        return self._git("rev-parse", "HEAD")

    def commit(
        self,
        subject: str,
        *,
        body: str = "",
        author: str | None = None,
        touch: str | None = _NEWS,
        **knobs: int,
    ) -> str:
        """Set ``knobs`` (others unchanged), append ``- subject`` to ``touch``, commit.

        ``touch`` names the harmless file that records the change (``None``: only
        ``config.h`` changes, so ``knobs`` must change something). Returns the sha.
        """
        return self.commit_knobs(subject, knobs, body=body, author=author, touch=touch)

    def commit_knobs(
        self,
        subject: str,
        knobs: Mapping[str, int],
        *,
        body: str = "",
        author: str | None = None,
        touch: str | None = _NEWS,
    ) -> str:
        """`commit`, with the knobs as a mapping (for tables of commits)."""
        check_knobs(knobs)
        new_knobs = {**self._knobs, **knobs}
        if touch is None and new_knobs == self._knobs and self._count > 0:
            raise ValueError(f"commit {subject!r} would change no file")
        self._knobs = new_knobs
        self._write("config.h", _render_config(new_knobs))
        if touch is not None:
            target = self.path / touch
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as log:
                log.write(f"- {subject}\n")
        self._git("add", "--all")
        message = f"{subject}\n\n{body.strip()}\n" if body.strip() else f"{subject}\n"
        return self._commit(message, author)

    def branch(self, name: str, at: str | None = None) -> None:
        """Create branch ``name`` at ``at`` (default HEAD) and switch to it."""
        self._git("checkout", "--quiet", "-b", name, at or "HEAD")
        self._reload_knobs()

    def switch(self, name: str) -> None:
        """Switch to the existing branch ``name``."""
        self._git("checkout", "--quiet", name)
        self._reload_knobs()

    def merge(self, name: str, subject: str, *, author: str | None = None) -> str:
        """Merge branch ``name`` into the current one with a merge commit; return its sha."""
        ours = self._knobs_at("HEAD")
        theirs = self._knobs_at(name)
        base = self._knobs_at(self._git("merge-base", "HEAD", name))
        merged = {k: theirs[k] if theirs[k] != base[k] else ours[k] for k in DEFAULT_KNOBS}
        try:
            self._git("merge", "--no-ff", "--no-commit", "--quiet", name)
        except GitError:
            conflicts = set(self._git("diff", "--name-only", "--diff-filter=U").split())
            if not conflicts:
                raise
            if conflicts - {"config.h"}:
                self._git("merge", "--abort")
                raise GitError(
                    f"merging {name!r} conflicts in {', '.join(sorted(conflicts))}"
                ) from None
        self._knobs = merged
        self._write("config.h", _render_config(merged))
        self._git("add", "config.h")
        return self._commit(f"{subject}\n", author)

    def tag(self, name: str, sha: str | None = None) -> None:
        """Create the lightweight tag ``name`` at ``sha`` (default HEAD)."""
        self._git("tag", name, sha or "HEAD")

    def _commit(self, message: str, author: str | None) -> str:
        name, email = _identity(author or _DEFAULT_AUTHOR)
        date = f"{_EPOCH + 3600 * self._count} +0000"
        self._count += 1
        self._env.update(
            GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email,
            GIT_AUTHOR_DATE=date,
            GIT_COMMITTER_DATE=date,
        )
        self._git("commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-m", message)
        return self.head

    def _knobs_at(self, rev: str) -> dict[str, int]:
        return _parse_config(self._git("show", f"{rev}:config.h"))

    def _reload_knobs(self) -> None:
        self._knobs = _parse_config((self.path / "config.h").read_text(encoding="utf-8"))

    def _write(self, name: str, text: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def _git(self, *args: str) -> str:
        result = proc.capture(["git", *args], cwd=self.path, timeout=_GIT_TIMEOUT, env=self._env)
        if not result.ok:
            reason = result.last_error_line or f"exit status {result.returncode}"
            if result.timed_out:
                reason = f"timed out after {_GIT_TIMEOUT:g} s"
            raise GitError(f"git {' '.join(args)} failed in {self.path}: {reason}")
        return result.stdout.strip()
