"""Large binaries are stored with their debug sections compressed: the same program,
still readable by gdb, stored once; and kept as they are where that cannot work."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from finbisect.build import debug_sections
from finbisect.build.objects import EVERYTHING, ObjectStore

_PROGRAM = """
#include <stdio.h>
struct pair { int left; int right; };
static int add(struct pair p) { return p.left + p.right; }
int main(void) { struct pair p = {20, 22}; printf("%d\\n", add(p)); return 0; }
"""

needs_objcopy = pytest.mark.skipif(shutil.which("objcopy") is None, reason="needs objcopy")


@pytest.fixture(autouse=True)
def _every_binary_is_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thresholds made for CPython's 28 MB interpreters, down to a tiny program's;
    and each test decides afresh what works here."""
    monkeypatch.setattr(debug_sections, "_WORTH_IT", 1)
    monkeypatch.setattr(debug_sections, "_works", {})


def _program(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "prog.c").write_text(_PROGRAM)
    subprocess.run(["cc", "-g", "-O0", "-o", "prog", "prog.c"], cwd=folder, check=True)
    (folder / "prog.c").unlink()
    return folder / "prog"


def _store(tmp_path: Path, source: Path, name: str) -> tuple[Path, int]:
    store = ObjectStore(tmp_path / "objects", compact_from=0)
    stored = store.link_tree(source.parent, tmp_path / name, EVERYTHING)
    return tmp_path / name / source.name, stored.added


def _old_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, says: str) -> None:
    """`name` on PATH is an older tool that says `says` and fails (as one without zstd)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / name).write_text(f"#!/bin/sh\necho '{says}' >&2\nexit 1\n")
    (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")


def test_the_elf_reader_counts_uncompressed_debug_sections(tmp_path: Path) -> None:
    program = _program(tmp_path / "src")
    assert debug_sections.uncompressed_debug_bytes(str(program)) > 0
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), str(program)], check=True)
    assert debug_sections.uncompressed_debug_bytes(str(stripped)) == 0
    (tmp_path / "text").write_text("not a binary\n")
    assert debug_sections.uncompressed_debug_bytes(str(tmp_path / "text")) == 0
    (tmp_path / "cut").write_bytes(program.read_bytes()[:80])  # a header, no sections
    assert debug_sections.uncompressed_debug_bytes(str(tmp_path / "cut")) == 0


@needs_objcopy
def test_a_stored_binary_has_compressed_debug_sections_and_runs_the_same(
    tmp_path: Path,
) -> None:
    program = _program(tmp_path / "src")
    kept, added = _store(tmp_path, program, "tree")
    before = debug_sections.uncompressed_debug_bytes(str(program))
    # (objcopy leaves the sections that would not shrink as they are)
    assert debug_sections.uncompressed_debug_bytes(str(kept)) < before / 2
    assert added > 0
    assert not os.access(kept, os.W_OK) or os.geteuid() == 0
    out = subprocess.run([str(kept)], capture_output=True, text=True, check=True)
    assert out.stdout == "42\n"
    if shutil.which("gdb") is not None:
        where = subprocess.run(
            ["gdb", "-batch", "-nx", "-ex", "info line add", str(kept)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert 'Line 4 of "prog.c"' in where.stdout  # gdb still reads the sections


@needs_objcopy
def test_the_same_binary_is_stored_once(tmp_path: Path) -> None:
    program = _program(tmp_path / "src")
    first, _ = _store(tmp_path, program, "one")
    second, added = _store(tmp_path, program, "two")  # a new store: no memory of the first
    assert added == 0
    assert first.samefile(second)


def test_without_a_working_objcopy_the_binary_is_kept_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as binutils before zstd: an unknown choice
    _old_tool(tmp_path, monkeypatch, "objcopy", "objcopy: unknown compression type zstd")
    program = _program(tmp_path / "src")
    kept, _ = _store(tmp_path, program, "tree")
    assert kept.read_bytes() == program.read_bytes()
    assert debug_sections._works == {"objcopy": False}  # remembered: not tried per file


@needs_objcopy
def test_a_gdb_that_cannot_read_them_turns_compression_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_tool(tmp_path, monkeypatch, "gdb", "No symbol table is loaded.")  # without zstd
    program = _program(tmp_path / "src")
    kept, _ = _store(tmp_path, program, "tree")
    assert kept.read_bytes() == program.read_bytes()
    assert debug_sections._works == {"gdb": False}
    assert not list((tmp_path / "tree").glob("*.link"))  # nothing half-made left
