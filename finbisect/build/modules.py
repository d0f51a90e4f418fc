"""What a repro needs built: the modules it imports, read as text (Python 2 repros too).

A finalization repro usually imports only modules that need no extension module
(CORE_MODULES: threading, time, os, signal, logging, ...). For such a repro the
interpreter alone is built (`make python platform`), with the C modules those
Python modules need made built-in when the revision builds them with setup.py:
decided from the revision's own `Modules/Setup*` files, whose commented-out
lines say how to build each module in (2.7: `#time timemodule.c # -lm`), not
from its version number. A repro that imports anything else, or imports
dynamically, gets every extension module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "CORE_MODULES",
    "builtin_modules",
    "import_statements",
    "imported_modules",
    "needs_extension_modules",
    "needs_test_modules",
    "setup_local",
]

# Python modules that import with no extension module built, once the C modules
# below are built in; checked on real 2.7.18, 3.9.2 and 3.13 builds. Anything
# else, or imports we cannot see, builds every extension module.
_CORE_MODULE_NAMES = """
    __future__ _thread abc atexit builtins codecs collections contextlib copy errno
    faulthandler functools gc io itertools linecache logging operator os queue re sched
    signal stat string sys textwrap thread threading time traceback types typing warnings
    weakref
"""
CORE_MODULES = frozenset(_CORE_MODULE_NAMES.split())
# The C modules CORE_MODULES need that some revisions build with setup.py (2.7:
# threading needs _collections, logging needs time and cStringIO, io needs _io).
# 3.x builds them all in; 2.x names are absent there and skipped.
_CORE_C_MODULES = (
    "time", "_collections", "operator", "_operator", "itertools", "_functools", "_io",
    "cStringIO",
)  # fmt: skip
_TEST_MODULE_IMPORT = re.compile(r"\b_test\w*capi\b|\b_testmultiphase\b|\b_testbuffer\b")
# Code the import statements do not show: dynamic imports, child interpreters.
_HIDDEN_IMPORTS = re.compile(r"__import__|import_module|\bexec\(|sys\.executable")
_IMPORT = re.compile(r"^([ \t]*)(?:import[ \t]+([^\n#;]+)|from[ \t]+([\w.]+)[ \t]+import\b)", re.M)
_SETUP_LINE = re.compile(r"^(#?)([A-Za-z_]\w*)\s+(?!=)(.*)$")


def needs_test_modules(repro_text: str) -> bool:
    """Does the repro import one of the test extension modules (_testcapi & co.)?"""
    return _TEST_MODULE_IMPORT.search(repro_text) is not None


def import_statements(repro_text: str, *, top_level: bool = False) -> list[str]:
    """The modules (dotted names) a repro's import statements name, in order, without
    relative imports; `top_level`: only statements at column 0 (run unconditionally)."""
    names: list[str] = []
    for indent, plain, source in _IMPORT.findall(repro_text):
        if top_level and indent:
            continue
        if plain:
            names += [p.split()[0] for p in plain.strip().strip("()").split(",") if p.strip()]
        elif not source.startswith("."):
            names.append(source)
    return list(dict.fromkeys(n for n in names if n and n != "__future__"))


def imported_modules(repro_text: str) -> set[str]:
    """Top-level packages of every module the repro imports anywhere."""
    return {name.partition(".")[0] for name in import_statements(repro_text)}


def needs_extension_modules(repro_text: str) -> bool:
    """Does the repro need more than the built-in modules (see CORE_MODULES)?"""
    imported = imported_modules(repro_text)
    return bool(imported - CORE_MODULES) or _HIDDEN_IMPORTS.search(repro_text) is not None


def builtin_modules(setup_texts: Mapping[str, str]) -> set[str]:
    """Modules the Setup files build into the interpreter: their active lines before a
    `*shared*` marker (2.7's Setup.dist, 3.x's Setup and 3.11+'s Setup.bootstrap.in)."""
    built: set[str] = set()
    for name, text in setup_texts.items():
        if name.endswith("Setup.stdlib.in"):  # 3.11+: the Makefile builds these as shared
            continue
        for line in text.splitlines():
            if line.strip().startswith("*shared*"):
                break
            m = _SETUP_LINE.match(line)
            if m is not None and not m.group(1):
                built.add(m.group(2))
    return built


def setup_local(setup_texts: Mapping[str, str]) -> str:
    """`Modules/Setup.local` lines that build in the core C modules the Setup files build
    with setup.py, copied from their commented-out lines; "" when nothing is missing."""
    built = builtin_modules(setup_texts)
    offered: dict[str, str] = {}
    for name, text in setup_texts.items():
        if name.endswith("Setup.stdlib.in"):
            continue
        for line in text.splitlines():
            m = _SETUP_LINE.match(line)
            if m is not None and m.group(1) and m.group(2) not in offered:
                # "#time timemodule.c # -lm # time operations": the "# -lm" is a hint
                rest = m.group(3).replace("# -lm", "-lm")
                offered[m.group(2)] = f"{m.group(2)} {rest.split('#')[0].strip()}"
    lines = [
        offered[module] for module in _CORE_C_MODULES if module not in built and module in offered
    ]
    if not lines:
        return ""
    head = "# finbisect: built in, so that `make python platform` imports threading & co.\n"
    return head + "\n".join(lines) + "\n"
