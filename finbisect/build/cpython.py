"""What finbisect knows about building CPython revisions. Pure: text in, plans out.

- the revision's version, read from Include/patchlevel.h;
- the configure flags each flavour needs, and whether the revision's
  configure script knows them;
- the make targets that give an interpreter able to run a repro, and the
  Setup.local that builds in what it needs (modules.py);
- the table of workarounds for old trees on a current toolchain (empty until a
  real tree needs one), which users extend with `--workaround`;
- which files of a built tree running the interpreter needs (the build cache
  keeps only those).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from finbisect.build.modules import setup_local
from finbisect.errors import UsageError
from finbisect.models import Flavour

__all__ = [
    "RUNTIME_FILES",
    "RUNTIME_SKIPPED",
    "WORKAROUNDS",
    "BuildPlan",
    "Version",
    "Workaround",
    "parse_version",
    "parse_workaround",
    "plan_build",
    "unsupported_reason",
]


# Flavour -> (configure flags, the configure-script variable that proves support).
_FLAVOUR_FLAGS: dict[Flavour, tuple[tuple[str, ...], str | None]] = {
    Flavour.RELEASE: ((), None),
    Flavour.PYDEBUG: (("--with-pydebug",), "with_pydebug"),
    Flavour.ASAN: (("--with-address-sanitizer", "--without-pymalloc"), "with_address_sanitizer"),
    Flavour.TSAN: (("--with-thread-sanitizer",), "with_thread_sanitizer"),
    Flavour.NOGIL: (("--disable-gil",), "enable_gil"),
}
# Flavour -> build environment. configure adds -fsanitize=... to LDFLAGS, but trees
# that link with another variable (Debian's makefile-bootstrap.diff, say) lose it;
# make also reads LDFLAGS from the environment. LeakSanitizer would fail the
# build at the first leaky build tool (_freeze_module): leaks are not the point.
_FLAVOUR_ENV: dict[Flavour, tuple[tuple[str, str], ...]] = {
    Flavour.ASAN: (("LDFLAGS", "+-fsanitize=address"), ("ASAN_OPTIONS", "detect_leaks=0")),
    Flavour.TSAN: (("LDFLAGS", "+-fsanitize=thread"),),
}
# Flags that only save time, passed when the revision's configure knows them.
_TIME_SAVERS = {"--without-ensurepip": "with_ensurepip"}
_TEST_MODULES_FLAG = ("--disable-test-modules", "enable_test_modules")

# What the interpreter needs to run from (a copy of) its build directory, besides
# itself: checked on real 2.7.18, 3.9.2 and 3.13 builds copied elsewhere, each file
# left out in turn (docs/architecture.md, "The build cache"). getpath finds the
# build directory by a landmark beside the executable: Modules/Setup on 2.7,
# Modules/Setup.local on 3.x, pybuilddir.txt on 3.11+; without it the interpreter
# looks for an installed stdlib, and may find another's. sysconfig.is_python_build
# looks for Setup.dist (2.7) or Setup.local; sysconfig reads _sysconfigdata (in
# build/lib.*), never the Makefile or pyconfig.h. Patterns: `*` also matches `/`.
RUNTIME_FILES = (
    "pybuilddir.txt",  # where the built modules are (build/lib.<platform>-<version>)
    "Lib/*",  # the standard library (Lib/os.py is the stdlib landmark)
    "build/lib.*/*",  # the built extension modules and _sysconfigdata
    "Modules/Setup*",  # the build-directory landmarks, on every era
    "libpython*.so*",  # a --enable-shared build's library
    "Tools/gdb/libpython.py",  # gdb's py-bt, for hang and crash stacks (runs/stacks.py)
)
# Regenerated when imported (2.7 writes *.pyc beside the sources), and never run.
RUNTIME_SKIPPED = ("*.pyc", "*.o", "*.a")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    micro: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.micro}"


def parse_version(patchlevel_h: str) -> Version | None:
    """The version in Include/patchlevel.h, or None if it is not there."""
    numbers = {
        name: int(value)
        for name, value in re.findall(
            r"^#define\s+PY_(MAJOR|MINOR|MICRO)_VERSION\s+(\d+)", patchlevel_h, re.MULTILINE
        )
    }
    if "MAJOR" not in numbers or "MINOR" not in numbers:
        return None
    return Version(numbers["MAJOR"], numbers["MINOR"], numbers.get("MICRO", 0))


@dataclass(frozen=True, kw_only=True)
class Workaround:
    """A known breakage of old trees on a current toolchain, and what fixes it.

    `env` entries are given to configure as its arguments (`./configure NAME=VALUE`,
    which configure records in the Makefile), never through the environment, where
    they would reach setup.py's link lines and change what configure detects; a
    value starting with "+" is appended to the variable's value in our environment.
    """

    name: str
    low: Version | None = None  # applies from this version (inclusive)
    high: Version | None = None  # up to this version (exclusive)
    env: tuple[tuple[str, str], ...] = ()
    hint: str = ""

    def applies(self, version: Version | None) -> bool:
        if version is None:
            return self.low is None and self.high is None
        return (self.low is None or version >= self.low) and (
            self.high is None or version < self.high
        )


# The built-in table (README "Old revisions"): each entry a breakage observed on a
# real tree with this machine's toolchain, and the smallest fix. Empty: CPython
# 2.7.18, 3.9.2, 3.13.5 and 3.13.15 build with GCC 12 and glibc 2.36 as they are.
# The entries an earlier finbisect carried (-fcommon, -Wno-error=implicit-*, a
# multiarch -L, MACHDEP=linux2) were not needed there, and MACHDEP in configure's
# environment broke 2.7 (configure stops asking uname: LDSHARED=ld, and every
# setup.py module fails to link). Users add entries with --workaround.
WORKAROUNDS: tuple[Workaround, ...] = ()


def parse_workaround(spec: str) -> Workaround:
    """`[LOW..HIGH:]NAME=VALUE`, e.g. `2.7..3.3:CFLAGS=+-fcommon` or `LDFLAGS=+-L/opt/lib`."""
    m = re.fullmatch(r"(?:([\d.]*)\.\.([\d.]*):)?([A-Za-z_]\w*)=(.*)", spec)
    if m is None:
        raise UsageError(f"--workaround {spec!r}: expected [LOW..HIGH:]NAME=VALUE")
    low_text, high_text, name, value = m.groups()
    return Workaround(
        name=f"user:{spec}",
        low=_version_or_none(low_text or "", spec),
        high=_version_or_none(high_text or "", spec),
        env=((name, value),),
    )


def _version_or_none(text: str, spec: str) -> Version | None:
    if not text:
        return None
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise UsageError(f"--workaround {spec!r}: {text!r} is not a version like 3.4")
    numbers = [int(p) for p in parts] + [0, 0]
    return Version(numbers[0], numbers[1], numbers[2])


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """How to build one revision: configure flags and env, then make targets."""

    version: Version | None
    configure_flags: tuple[str, ...]  # the workarounds' NAME=VALUE arguments included
    env: tuple[tuple[str, str], ...]  # extra environment for configure and make (flavours)
    make_targets: tuple[str, ...]  # empty: make's default target
    setup_local: str = ""  # Modules/Setup.local to write before configure ("" leaves it)
    workarounds: tuple[str, ...] = field(default=())  # names, for the report and hints


def unsupported_reason(flavour: Flavour, configure_text: str) -> str | None:
    """Why this revision cannot be built in `flavour`, or None if it can."""
    _, variable = _FLAVOUR_FLAGS[flavour]
    if variable is not None and not re.search(rf"\b{variable}\b", configure_text):
        flag = _FLAVOUR_FLAGS[flavour][0][0]
        return f"this revision's configure has no {flag} (flavour {flavour.value})"
    return None


def plan_build(
    *,
    flavour: Flavour,
    configure_text: str,
    makefile_text: str,
    patchlevel_text: str,
    setup_texts: Mapping[str, str],
    test_modules: bool,
    extension_modules: bool,
    extra_flags: Sequence[str] = (),
    user_workarounds: Iterable[Workaround] = (),
    environ: Mapping[str, str] | None = None,
) -> BuildPlan:
    """The configure flags, environment and make targets for one revision.

    `setup_texts`: the revision's `Modules/Setup*` files by path; `environ`: the
    environment a "+VALUE" workaround appends to.
    """
    version = parse_version(patchlevel_text)
    flags = list(_FLAVOUR_FLAGS[flavour][0])
    flags += [
        flag for flag, var in _TIME_SAVERS.items() if re.search(rf"\b{var}\b", configure_text)
    ]
    # Test extension modules are skipped unless the repro imports one.
    flag, var = _TEST_MODULES_FLAG
    if re.search(rf"\b{var}\b", configure_text) and not test_modules:
        flags.append(flag)
    flags += extra_flags
    applied = [w for w in (*WORKAROUNDS, *user_workarounds) if w.applies(version)]
    flags += _configure_variables(applied, environ or {})
    everything = extension_modules or test_modules
    targets, local = _make_targets(makefile_text, setup_texts, everything=everything)
    return BuildPlan(
        version=version,
        configure_flags=tuple(flags),
        env=_FLAVOUR_ENV.get(flavour, ()),
        make_targets=targets,
        setup_local=local,
        workarounds=tuple(w.name for w in applied),
    )


def _configure_variables(applied: Sequence[Workaround], environ: Mapping[str, str]) -> list[str]:
    """NAME=VALUE arguments for configure; "+VALUE" appends to the environment's value."""
    values: dict[str, str] = {}
    for name, value in (pair for w in applied for pair in w.env):
        if value.startswith("+"):
            base = values.get(name, environ.get(name, ""))
            values[name] = f"{base} {value[1:]}".strip()
        else:
            values[name] = value
    return [f"{name}={value}" for name, value in values.items()]


def _make_targets(
    makefile_text: str, setup_texts: Mapping[str, str], *, everything: bool
) -> tuple[tuple[str, ...], str]:
    """(make targets, Setup.local): the interpreter and its platform files, with the core
    C modules built in (modules.setup_local); every extension module only when needed.

    Decided from the revision's files: `platform` in Makefile.pre.in, and whether the
    Makefile builds the shared modules (`sharedmods` with Setup.stdlib.in, 3.12+) or
    setup.py does (then only make's default target builds them). Test programs, gdb
    hooks and scripts are never built.
    """
    has = {t for t in ("platform", "sharedmods") if re.search(rf"^{t}:", makefile_text, re.M)}
    makefile_builds_modules = "sharedmods" in has and any(
        name.endswith("Setup.stdlib.in") for name in setup_texts
    )
    if everything:
        if makefile_builds_modules and "platform" in has:
            return ("python", "platform", "sharedmods"), ""
        return (), ""
    if "platform" not in has:
        return (), ""
    return ("python", "platform"), setup_local(setup_texts)
