"""Shared helpers: run the CLI in-process and read what a user would see."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from finbisect.cli.app import cli
from tests.processes import recording_children

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


@pytest.fixture
def leftovers(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    """Fails the test if a process it started (or a descendant) is still running at its end."""
    yield from recording_children(monkeypatch)
