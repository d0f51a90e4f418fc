"""Every era builds (opt-in): `pytest -m cpython tests/integration/test_eras.py`.

For each real CPython history (2.7.18, 3.9.2, 3.13.5, 3.13.15: a release tarball
and one commit per Debian patch), finbisect's own default build of the first
and the last commit must give an interpreter that runs a threading repro.
`FINBISECT_CPYTHON_27`, `_39`, `_3135`, `_31315` name existing histories;
without one, the history is made with tools/cpython-history-from-debian in a
temporary directory (root and apt needed, else skipped).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from finbisect.build.builder import BuildConfig, Builder, BuildResult
from finbisect.build.cache import BuildCache
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from tests.integration.test_cpython import _python

pytestmark = [pytest.mark.cpython, pytest.mark.slow]

_TOOL = Path(__file__).resolve().parents[2] / "tools" / "cpython-history-from-debian"
# env suffix -> the tool's arguments (suite, package, version)
_ERAS = {
    "27": ("bullseye", "python2.7", ""),
    "39": ("bullseye", "python3.9", ""),
    "3135": ("trixie", "python3.13", ""),
    "31315": ("forky", "python3.13", "3.13.15-1"),
}
# Python 2 compatible: the same repro runs in every era.
_REPRO = (
    "import threading\n"
    "t = threading.Thread(target=lambda: None)\n"
    "t.start()\n"
    "t.join()\n"
    "print('joined')\n"
)


def _history(era: str, tmp_path: Path) -> Path:
    given = os.environ.get(f"FINBISECT_CPYTHON_{era}", "")
    if given:
        return Path(given)
    if os.geteuid() != 0:
        pytest.skip(f"set FINBISECT_CPYTHON_{era}, or run as root to make the history")
    suite, package, version = _ERAS[era]
    dest = tmp_path / "history"
    made = subprocess.run(
        [str(_TOOL), suite, package, str(dest), *([version] if version else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot make the {package} history: {made.stderr.strip()[-300:]}")
    return dest


def _ends(repo: Path) -> list[str]:
    shas = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "--first-parent", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [shas[0], shas[-1]]


def _explain(result: BuildResult) -> str:
    return f"{result.reason}: {' | '.join(result.error_lines)} (log: {result.log_path})"


@pytest.mark.parametrize("era", list(_ERAS))
def test_first_and_last_commit_build_and_run_threads(era: str, tmp_path: Path) -> None:
    repo = _history(era, tmp_path)
    repro = tmp_path / "repro.py"
    repro.write_text(_REPRO)
    config = BuildConfig(
        command=None, interpreter="python", jobs=os.cpu_count() or 1, timeout=3600.0
    ).for_repros([repro])  # the default flavour, with what the repro imports
    ends = _ends(repo)
    cache = tmp_path / "cache"
    with locked_workspace(cache, UserRepo(repo)) as workspace:
        workspace.refresh(ends)
        builder = Builder(workspace, config, tmp_path / "logs", BuildCache(cache / "builds"))
        for sha in ends:
            built = builder.build(sha)
            assert built.ok, _explain(built)
            assert built.interpreter is not None
            ran = _python(built.interpreter, str(repro), cwd=tmp_path)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert ran.stdout.strip() == "joined"
