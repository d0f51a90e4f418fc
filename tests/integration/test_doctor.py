"""`finbisect doctor`: what this machine can do, and what to install when it cannot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke


def test_this_machine_can_bisect(tmp_path: Path) -> None:
    result = invoke("doctor", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.stdout
    names = [line.split()[1] for line in result.stdout.splitlines() if line[:4] in ("ok  ", "warn")]
    assert names[:6] == ["C", "make", "git", "gdb", "ccache", "disk"]
    assert result.stdout.endswith("this machine can bisect\n")


def test_a_missing_compiler_is_a_failure_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("git", "make"):  # everything but a C compiler (and gdb, ccache)
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    result = invoke("doctor", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 6
    assert "fail  C compiler  not found" in result.stdout
    assert "apt-get install build-essential" in result.stdout
    assert "warn  gdb" in result.stdout
    assert "apt-get install gdb" in result.stdout
    assert "cannot build: C compiler missing" in result.stdout
    assert os.environ["PATH"] == str(tools)
