"""Large binaries kept with their debug sections compressed.

A CPython 3.13 pydebug interpreter is 28 MB, 19 MB of it DWARF that only gdb
reads. `objcopy --compress-debug-sections=zstd` keeps the same binary in about
15 MB (0.15 s for a 3.13 interpreter): the loadable sections are untouched, so
the interpreter runs the same code, and gdb reads compressed sections as they
are, so stacks keep their file:line. The build cache stores interpreters this
way (objects.py), which keeps a 3.13 revision under 25 MB.

Used only where it works: objcopy must accept zstd, and the machine's gdb (if
any) must read the result. The first binary compacted in a process is checked
with gdb; a gdb that cannot read it turns compaction off for the process.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import BinaryIO

from finbisect.runs.capture import capture

__all__ = ["compact", "uncompressed_debug_bytes"]

_WORTH_IT = 1 << 20  # bytes of uncompressed DWARF below which a binary is kept as it is
_SHF_COMPRESSED = 0x800
_SHT_NOBITS = 8
_OBJCOPY_SECONDS = 120.0
_GDB_SECONDS = 60.0

# Per process: can objcopy compress with zstd, and can gdb read what it makes?
# None until the first try decides.
_works: dict[str, bool] = {}


def uncompressed_debug_bytes(path: str) -> int:
    """Bytes of `.debug_*` sections stored uncompressed in the ELF file `path`; 0 for
    anything else (not ELF, unreadable, truncated)."""
    try:
        with Path(path).open("rb") as handle:
            return _debug_bytes(handle.read(64), handle)
    except (OSError, struct.error, ValueError, IndexError):
        return 0


def _debug_bytes(header: bytes, handle: BinaryIO) -> int:
    if header[:4] != b"\x7fELF" or header[4] not in (1, 2) or header[5] not in (1, 2):
        return 0
    wide, order = header[4] == 2, "<" if header[5] == 1 else ">"
    if wide:
        shoff, entsize, count, names = struct.unpack_from(order + "Q10xHHH", header, 0x28)
        layout = order + "IIQ8xQQ"  # name, type, flags, (addr), offset, size
    else:
        shoff, entsize, count, names = struct.unpack_from(order + "I10xHHH", header, 0x20)
        layout = order + "III4xII"
    handle.seek(shoff)
    table = handle.read(entsize * count)
    sections = [struct.unpack_from(layout, table, i * entsize) for i in range(count)]
    _name, _kind, _flags, names_offset, names_size = sections[names]
    handle.seek(names_offset)
    strings = handle.read(names_size)
    total = 0
    for name, kind, flags, _offset, size in sections:
        label = strings[name : strings.index(b"\0", name)]
        if label.startswith(b".debug_") and kind != _SHT_NOBITS and not flags & _SHF_COMPRESSED:
            total += size
    return total


def compact(source: str, out: str) -> bool:
    """Write `source` to `out` with its debug sections compressed, when that is worth
    it and works here; False (and no `out`) otherwise."""
    if _works.get("objcopy") is False or _works.get("gdb") is False:
        return False
    if uncompressed_debug_bytes(source) < _WORTH_IT or shutil.which("objcopy") is None:
        return False
    folder = Path(out).parent
    made = capture(
        ["objcopy", "--compress-debug-sections=zstd", source, out],
        cwd=folder,
        timeout=_OBJCOPY_SECONDS,
    )
    if not made.ok:
        _works["objcopy"] = False  # an old binutils without zstd: say no once
        Path(out).unlink(missing_ok=True)
        return False
    if "gdb" not in _works:
        verdict = _gdb_reads(out, folder)
        if verdict is not None:
            _works["gdb"] = verdict
        if not verdict:
            Path(out).unlink(missing_ok=True)
            return False
    return True


def _gdb_reads(binary: str, folder: Path) -> bool | None:
    """Does this machine's gdb find line numbers in the compacted `binary`? True when
    there is no gdb (nothing here reads debug sections); None when `binary` cannot
    tell (no `main`: a shared library), so the next one asks again."""
    if shutil.which("gdb") is None:
        return True
    read = capture(
        ["gdb", "-batch", "-nx", "-ex", "info line main", binary],
        cwd=folder,
        timeout=_GDB_SECONDS,
    )
    if "Line " in read.stdout:
        return True
    if 'Function "main" not defined' in read.stdout + read.stderr:
        return None
    return False
