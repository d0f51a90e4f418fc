"""What finbisect knows about building CPython revisions. Pure: text in, plans out.

- the revision's version, read from Include/patchlevel.h;
- the configure flags each flavour needs, and whether the revision's
  configure script knows them;
- the make targets that give an interpreter able to run a repro;
- the small table of workarounds that let 2.7 and 3.1-3.4 era trees build
  with a current toolchain (GCC 12+, glibc 2.36), which users extend with
  `--workaround`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from finbisect.errors import UsageError
from finbisect.models import Flavour

__all__ = [
    "WORKAROUNDS",
    "BuildPlan",
    "Version",
    "Workaround",
    "needs_extension_modules",
    "needs_test_modules",
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
_TEST_MODULE_IMPORT = re.compile(r"\b_test\w*capi\b|\b_testmultiphase\b|\b_testbuffer\b")


def needs_test_modules(repro_text: str) -> bool:
    """Does the repro import one of the test extension modules (_testcapi & co.)?"""
    return _TEST_MODULE_IMPORT.search(repro_text) is not None


# Modules that import with no extension module built (3.12+: only the built-in
# ones, from `make python platform`), checked on a real 3.13 build; the ones a
# finalization repro uses. Anything else, or imports we cannot see, builds them all.
_CORE_MODULE_NAMES = """
    __future__ _thread abc atexit builtins codecs collections contextlib copy errno
    faulthandler functools gc io itertools linecache logging operator os queue re sched
    signal stat string sys textwrap threading time traceback types typing warnings weakref
"""
CORE_MODULES = frozenset(_CORE_MODULE_NAMES.split())
# Code the import statements do not show: dynamic imports, child interpreters.
_HIDDEN_IMPORTS = re.compile(r"__import__|import_module|\bexec\(|sys\.executable")


def needs_extension_modules(repro_text: str) -> bool:
    """Does the repro need more than the built-in modules (see CORE_MODULES)?"""
    try:
        tree = ast.parse(repro_text)
    except (SyntaxError, ValueError):
        return True  # Python 2 syntax, say: we cannot tell, so build everything
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.partition(".")[0])
    return bool(imported - CORE_MODULES) or _HIDDEN_IMPORTS.search(repro_text) is not None


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

    `env` entries are given to configure (and make); a value starting with
    "+" is appended to whatever the variable already holds.
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


# The documented table (README "Old revisions"). Keep it small: each entry a
# real, observed breakage with the smallest fix.
WORKAROUNDS: tuple[Workaround, ...] = (
    Workaround(
        name="fcommon",
        high=Version(3, 9),
        env=(("CFLAGS", "+-fcommon"),),
        hint="GCC 10+ defaults to -fno-common; old trees define globals in headers",
    ),
    Workaround(
        name="machdep",
        high=Version(3, 3),
        env=(("MACHDEP", "linux2"),),
        hint="configure derives MACHDEP from the kernel (linux6); old trees expect linux2",
    ),
    Workaround(
        name="implicit-declarations",
        high=Version(3, 6),
        env=(("CFLAGS", "+-Wno-error=implicit-function-declaration -Wno-error=implicit-int"),),
        hint="GCC 14 makes C89-isms errors",
    ),
    Workaround(
        name="multiarch",
        high=Version(3, 3),
        env=(("LDFLAGS", "+-L/usr/lib/x86_64-linux-gnu"),),
        hint="setup.py before 3.3 does not search multiarch library directories",
    ),
)


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
    configure_flags: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # extra environment for configure and make
    make_targets: tuple[str, ...]  # empty: make's default target
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
    test_modules: bool,
    extension_modules: bool,
    extra_flags: Sequence[str] = (),
    user_workarounds: Iterable[Workaround] = (),
) -> BuildPlan:
    """The configure flags, environment and make targets for one revision."""
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
    env: dict[str, str] = {}
    settings = [*_FLAVOUR_ENV.get(flavour, ()), *(pair for w in applied for pair in w.env)]
    for name, value in settings:
        if value.startswith("+"):
            env[name] = f"{env[name]} {value[1:]}" if name in env else f"+{value[1:]}"
        else:
            env[name] = value
    return BuildPlan(
        version=version,
        configure_flags=tuple(flags),
        env=tuple(sorted(env.items())),
        make_targets=_make_targets(
            version, makefile_text, extension_modules=extension_modules or test_modules
        ),
        workarounds=tuple(w.name for w in applied),
    )


def _make_targets(
    version: Version | None, makefile_text: str, *, extension_modules: bool
) -> tuple[str, ...]:
    """What to build: the interpreter, its platform files, its extension modules if needed.

    From 3.12 every module the probe needs (time, _thread, _signal, faulthandler,
    posix) is built in, and extension modules are built by the Makefile, so
    `python platform` is enough unless the repro imports more (`sharedmods`, about
    a quarter of a 3.13 build). Test programs, gdb hooks and scripts are never built.
    Before 3.12, setup.py builds modules as part of the default target, which is
    therefore what we ask for.
    """
    has = {t for t in ("platform", "sharedmods") if re.search(rf"^{t}:", makefile_text, re.M)}
    if version is not None and version >= Version(3, 12) and has == {"platform", "sharedmods"}:
        return ("python", "platform", *(("sharedmods",) if extension_modules else ()))
    return ()
