"""step_overhead.py's long history, written in one `git fast-import` stream.

The HEAD tree of a source checkout (`git archive`) committed once, then
`commits` commits that each rewrite one small file (STEP_FILE), the middle one
also adding MARKER, which step_overhead.py's trivial build turns into a crash.
Fixed committer and dates, so the same source and count give the same shas.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

MARKER = "Misc/FB_CRASH"
STEP_FILE = "Misc/FB_STEP"
_DATE = 1_700_000_000


def _data(out: IO[bytes], payload: bytes) -> None:
    out.write(b"data %d\n" % len(payload))
    out.write(payload)
    out.write(b"\n")


def _commit(out: IO[bytes], n: int, message: str, files: Sequence[tuple[str, str, bytes]]) -> None:
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer Bench <bench@example.org> %d +0000\n" % (_DATE + n))
    _data(out, message.encode())
    for mode, path, payload in files:
        out.write(f"M {mode} inline {path}\n".encode())
        _data(out, payload)


def _tree_files(source: Path) -> Iterator[tuple[str, str, bytes]]:
    archive = subprocess.run(
        ["git", "-C", str(source), "archive", "--format=tar", "HEAD"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            if member.isfile():
                mode = "100755" if member.mode & 0o111 else "100644"
                handle = tar.extractfile(member)
                assert handle is not None
                yield mode, member.name, handle.read()
            elif member.issym():
                yield "120000", member.name, member.linkname.encode()


def make_history(repo: Path, source: Path, commits: int) -> tuple[str, str, str]:
    """(good, bad, culprit): the tree, then `commits` commits; the middle one the culprit."""
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(repo)], check=True)
    crash_at = commits // 2
    importer = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--export-marks=" + str(repo / ".git" / "marks")],
        cwd=repo, stdin=subprocess.PIPE,
    )  # fmt: skip
    assert importer.stdin is not None
    out = importer.stdin
    _commit(out, 0, "The tree\n", list(_tree_files(source)))
    for n in range(1, commits + 1):
        files = [("100644", STEP_FILE, b"%d\n" % n)]
        if n == crash_at:
            files.append(("100644", MARKER, b"crash\n"))
        _commit(out, n, f"Step {n}\n", files)
    out.close()
    if importer.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "-C", str(repo), "checkout", "--quiet", "main"], check=True)
    log = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "main"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return log[0], log[-1], log[crash_at]
