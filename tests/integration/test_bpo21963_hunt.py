"""The bpo-21963 hunt on real 2.7 (opt-in: `pytest -m "cpython and slow"`).

2.7.8's bpo-1856 backport is not in any history here, so it is reconstructed
(tools/patches/bpo-1856-backport-2.7.patch) and inserted as a commit into a
copy of a 2.7.18 history (benchmarks/inject_history.py); finbisect must name
that commit. The history is `FINBISECT_CPYTHON_27` (e.g. one made by
`tools/cpython-history-from-debian bullseye python2.7 DIR`), or made with that
tool when unset; the test skips when neither is possible. Minutes of builds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from inject_history import git, inject_commit, patch_applier  # noqa: E402

pytestmark = [pytest.mark.cpython, pytest.mark.slow]

PATCH = ROOT / "tools" / "patches" / "bpo-1856-backport-2.7.patch"
POSITION = 30  # after a Debian patch in the middle of 2.7.18's 63 commits


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("FINBISECT_CPYTHON_27", "")
    if given:
        path = Path(given)
        if not (path / ".git").exists():
            pytest.skip(f"FINBISECT_CPYTHON_27={given} is not a git checkout")
        return path
    made = tmp_path_factory.mktemp("py27") / "history"
    tool = ROOT / "tools" / "cpython-history-from-debian"
    done = subprocess.run(
        [str(tool), "bullseye", "python2.7", str(made)], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"no 2.7 history: set FINBISECT_CPYTHON_27 ({done.stderr.strip()[-200:]})")
    return made


def test_the_injected_backport_is_named(history: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    # The files the patch edits, from the patch itself (as tools/inject-commit does).
    numstat = git(history, "apply", "--numstat", str(PATCH))
    touched = [line.split("\t")[2] for line in numstat.splitlines()]
    shas, injected = inject_commit(
        history,
        clone,
        POSITION,
        change=patch_applier(PATCH),
        message="Backport bpo-1856 (reconstructed): threads exit once Py_Finalize has begun",
        touched=touched,
    )
    result = tmp_path / "result.json"
    finbisect = Path(sys.executable).parent / "finbisect"
    # Options from recipes/bpo-21963.toml; the hang is deterministic, one run decides.
    done = subprocess.run(
        [
            str(finbisect), "run", str(ROOT / "recipes" / "bpo-21963.py"),
            "--repo", str(clone), "--good", shas[0], "--bad", shas[-1],
            "--symptom", "hang", "--timeout", "20", "--flavour", "release", "--runs", "1",
            "--cache-dir", str(tmp_path / "cache"), "--json", str(result),
        ],
        check=False,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(result.read_text())["culprit"]["sha"] == injected
    assert git(clone, "rev-parse", f"{injected}^") == shas[POSITION]
