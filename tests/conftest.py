"""Shared helpers: run the CLI in-process and read what a user would see.

An autouse fixture holds for every test:

- `_minipy_random_state`: the minipy programs a test runs draw their
  randomness from a counter that starts at a hash of the test's node id, so
  every `pytest` run gives each test the same random stream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from finbisect.cli.app import cli
from finbisect.testing.minipy import RANDOM_STATE_ENV, write_random_state

REPRO = "import threading\nthreading.Thread(target=lambda: None, daemon=True).start()\n"
GIL_MATCH = r"pthread_mutex_destroy\(gil_mutex\) failed"


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self, path: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def invoke(*args: str) -> CliResult:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def repro(tmp_path: Path) -> Path:
    path = tmp_path / "repro.py"
    path.write_text(REPRO)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


Hunt = Callable[..., CliResult]


@pytest.fixture
def hunt(repro: Path, cache: Path, tmp_path: Path) -> Hunt:
    """`finbisect run` with minipy's build; keyword args become extra options."""

    def run(repo: Path, good: str, bad: str, *extra: str) -> CliResult:
        return invoke(
            "run", str(repro), "--repo", str(repo), "--good", good, "--bad", bad,
            "--build-cmd", "make", "--interpreter", "python", "--cache-dir", str(cache),
            "--json", str(tmp_path / "out.json"), *extra,
        )  # fmt: skip

    return run


# --- the same minipy randomness on every run --------------------------------------------


@pytest.fixture(autouse=True)
def _minipy_random_state(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MINIPY_RANDOM_STATE for this test: a counter starting at a hash of its node id."""
    path = tmp_path_factory.mktemp("minipy-random") / "state"
    digest = hashlib.sha256(request.node.nodeid.encode()).digest()
    write_random_state(path, int.from_bytes(digest[:8], "big"))
    monkeypatch.setenv(RANDOM_STATE_ENV, str(path))
