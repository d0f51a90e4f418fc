"""What a hunt is asked to do: every `finbisect run` option, declared once.

`RUN_OPTIONS` declares the options (see option_model.py); `HuntOptions` holds
their values, one field per option, and checks how they combine. From the
same declarations come the CLI's parser (cli/), the key that says which saved
hunt the same options would resume, and the one line that runs the hunt again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

from finbisect.build.builder import BuildConfig
from finbisect.build.cpython import parse_workaround
from finbisect.errors import UsageError
from finbisect.hunt.option_model import (
    Kind,
    Option,
    option_values,
    parse_choice,
    parse_float,
    parse_int,
    parse_path,
    parse_regex,
    parse_size_text,
    show_float,
    show_size,
    to_argv,
)
from finbisect.models import Flavour, OutcomeKind

__all__ = [
    "BUILD_OPTIONS",
    "CACHE_OPTIONS",
    "DEFAULT_SYMPTOM",
    "RUN_OPTIONS",
    "HuntOptions",
    "default_cache_dir",
    "hunt_key",
    "reproduce_command",
]

DEFAULT_SYMPTOM = "crash,hang"
_SYMPTOM_KINDS = ("crash", "hang", "error")


def default_cache_dir() -> Path:
    return Path(os.environ.get("FINBISECT_CACHE_DIR") or platformdirs.user_cache_dir("finbisect"))


def _parse_symptom(text: str) -> str:
    """crash,hang,error in any order (stored sorted), or `slow` alone."""
    kinds = {part.strip() for part in text.split(",") if part.strip()}
    if kinds == {"slow"}:
        return "slow"
    if "slow" in kinds:
        raise ValueError("slow is a timing hunt of its own: give it alone")
    if not kinds or not kinds <= set(_SYMPTOM_KINDS):
        raise ValueError(f"{text!r}: give a comma-separated list of crash, hang, error, or slow")
    return ",".join(sorted(kinds))


def _parse_workaround(text: str) -> str:
    try:
        parse_workaround(text)
    except UsageError as exc:
        raise ValueError(exc.message) from None
    return text


def _parse_nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("it is empty")
    return text


def _option(name: str, flag: str, help_text: str, **more: object) -> Option:
    return Option(name=name, flags=(flag,), help=help_text, **more)  # type: ignore[arg-type]


_POSITIVE = parse_float(low=0.0, low_open=True)

BUILD_OPTIONS = (
    _option("build_cmd", "--build-cmd", "Shell command that builds a revision "
            "(default: CPython's own build).", parse=_parse_nonempty),
    _option("interpreter", "--interpreter", "The built executable, relative to the checkout.",
            parse=_parse_nonempty, default="python"),
    Option(name="jobs", flags=("-j", "--jobs"), help="Build parallelism.", parse=parse_int(),
           default=lambda: os.cpu_count() or 1, show_default="number of CPUs", in_key=False),
    _option("build_timeout", "--build-timeout", "Seconds a build may take before the "
            "revision is skipped.", parse=_POSITIVE, show=show_float, default=3600.0,
            in_key=False),
    _option("flavour", "--flavour", "CPython build flavour (default pydebug); not with "
            "--build-cmd.", parse=Flavour, show=lambda f: f.value,
            choices=tuple(f.value for f in Flavour)),
    Option(name="configure_flags", flags=("--configure-flag",), kind=Kind.MULTIPLE,
           help="Extra flag for CPython's ./configure (repeatable).", default=()),
    Option(name="workarounds", flags=("--workaround",), kind=Kind.MULTIPLE,
           parse=_parse_workaround, default=(), metavar="[LOW..HIGH:]NAME=VALUE",
           help="Add to the old-toolchain table; '+VALUE' appends (repeatable)."),
    _option("ccache", "--no-ccache", "Compile without ccache.", kind=Kind.FLAG, default=True,
            in_key=False),
)  # fmt: skip

CACHE_OPTIONS = (
    _option("cache_dir", "--cache-dir", "Where finbisect keeps its clone, builds and logs.",
            parse=parse_path, default=default_cache_dir, in_key=False,
            show_default="$FINBISECT_CACHE_DIR or the user cache"),
    _option("cache_size", "--cache-size", "Cached builds kept, least recently used evicted "
            "first.", parse=parse_size_text, show=show_size, default=20 * 1024**3,
            show_default="20G", in_key=False),
)  # fmt: skip

RUN_OPTIONS: tuple[Option, ...] = (
    Option(name="repro", flags=(), kind=Kind.ARGUMENT, parse=parse_path,
           help="The repro script; each run is `<built interpreter> <REPRO>`."),
    _option("repo", "--repo", "The CPython git checkout (never modified).", parse=parse_path,
            in_key=False),  # the key holds its git directory
    _option("good", "--good", "A revision that does not show the symptom.", in_key=False),
    _option("bad", "--bad", "A revision that shows the symptom.", in_key=False),
    *BUILD_OPTIONS,
    _option("symptom", "--symptom", "Run kinds that count as the symptom (crash, hang, "
            "error), or slow: a timing hunt.", parse=_parse_symptom, default=DEFAULT_SYMPTOM),
    _option("match", "--match", "Regex a crash's or error's output (a hang's stacks) must "
            "match to count as the symptom.", parse=parse_regex),
    _option("timeout", "--timeout", "Seconds one run may take before it counts as a hang.",
            parse=_POSITIVE, show=show_float, default=60.0),
    _option("runs", "--runs", "Fixed runs per revision, any symptom makes it bad (git "
            "bisect's search). Default: the noisy search decides.", parse=parse_int()),
    _option("confidence", "--confidence", "Noisy search: stop when one commit holds this "
            "much posterior probability.", parse=parse_float(low=0.5, high=0.9999),
            show=show_float, default=0.95),
    _option("max_runs", "--max-runs", "Noisy search: total run budget; spent first -> "
            "inconclusive (exit 5).", parse=parse_int(), default=2000),
    _option("max_runs_per_revision", "--max-runs-per-revision", "Noisy search: runs at the "
            "bad end before concluding it never shows the symptom.", parse=parse_int(),
            default=200),
    _option("model", "--model", "Noisy search: one-sided (a revision without the bug never "
            "shows the symptom), two-sided (both rates unknown: a rare symptom became frequent), "
            "or auto.", parse=parse_choice(("auto", "one-sided", "two-sided")), default="auto",
            choices=("auto", "one-sided", "two-sided")),
    _option("parallel_runs", "--parallel-runs", "Repro processes run at once at the same "
            "revision.", parse=parse_int(), default=1, in_key=False),
    _option("build_ahead", "--no-build-ahead", "Do not build the revisions the search will "
            "probably ask for next while runs go (at the lowest CPU priority).", kind=Kind.FLAG,
            default=True, in_key=False),
    _option("threshold_percent", "--threshold", "--symptom slow: the slowdown that counts, "
            "relative to the good end.", parse=_POSITIVE, show=show_float, metavar="PERCENT"),
    _option("affinity", "--affinity", "--symptom slow: pin pyperf's workers to these CPUs.",
            parse=_parse_nonempty, metavar="CPU_LIST", in_key=False),
    _option("first_parent", "--first-parent", "Only follow first parents (mainline merges).",
            kind=Kind.FLAG, default=False),
    _option("verify", "--no-verify", "Trust --good and --bad without testing them.",
            kind=Kind.FLAG, default=True),
    _option("evidence", "--no-evidence", "Do not rerun the first bad revision under gdb "
            "for its stacks once the culprit is known.", kind=Kind.FLAG, default=True,
            in_key=False),
    *CACHE_OPTIONS,
    _option("dask_scheduler", "--dask-scheduler", "Build and run on this Dask cluster "
            "(tcp://HOST:PORT; needs finbisect[dask]). Default: here.", parse=_parse_nonempty,
            default=lambda: os.environ.get("FINBISECT_DASK_SCHEDULER") or None, in_key=False,
            show_default="$FINBISECT_DASK_SCHEDULER or none", metavar="ADDRESS"),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class HuntOptions:
    """The values of RUN_OPTIONS, one field each, checked together."""

    repro: Path
    repo: Path
    good: str
    bad: str
    build_cmd: str | None = None
    interpreter: str = "python"
    jobs: int = 1
    build_timeout: float = 3600.0
    flavour: Flavour | None = None  # None: pydebug for CPython's own build
    configure_flags: tuple[str, ...] = ()
    workarounds: tuple[str, ...] = ()
    ccache: bool = True
    symptom: str = DEFAULT_SYMPTOM
    match: str | None = None
    timeout: float = 60.0
    runs: int | None = None  # fixed runs per revision (classic search); None: noisy search
    confidence: float = 0.95
    max_runs: int = 2000
    max_runs_per_revision: int = 200
    model: str = "auto"  # the noisy search's noise model (search/model_choice.py)
    parallel_runs: int = 1
    build_ahead: bool = True  # hunt/build_ahead.py
    threshold_percent: float | None = None
    affinity: str | None = None
    first_parent: bool = False
    verify: bool = True
    evidence: bool = True  # the symptom's stacks at the first bad revision (gdb)
    cache_dir: Path
    cache_size: int = 20 * 1024**3
    dask_scheduler: str | None = None  # a Dask scheduler's address: the work runs there

    def __post_init__(self) -> None:
        if not self.slow and (self.threshold_percent is not None or self.affinity is not None):
            raise UsageError("--threshold and --affinity belong to timing hunts (--symptom slow)")
        if self.slow and (self.match is not None or not self.verify or self.runs is not None):
            raise UsageError("--match, --no-verify and --runs have no meaning with --symptom slow")
        if self.slow and self.dask_scheduler is not None:
            raise UsageError("--symptom slow times on this machine: not with --dask-scheduler")
        if self.model != "auto" and (self.slow or self.runs is not None):
            raise UsageError("--model chooses the noisy search's model: not with --runs or slow")
        if self.build_cmd is not None and (
            self.flavour is not None or self.configure_flags or self.workarounds
        ):
            raise UsageError(
                "--flavour, --configure-flag and --workaround configure CPython's own build; "
                "they have no meaning with --build-cmd"
            )

    @property
    def slow(self) -> bool:
        """A timing hunt: pyperf decides, not crashes."""
        return self.symptom == "slow"

    @property
    def symptom_kinds(self) -> frozenset[OutcomeKind]:
        return frozenset() if self.slow else frozenset(map(OutcomeKind, self.symptom.split(",")))

    @property
    def match_pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.match) if self.match is not None else None

    def build_config(self) -> BuildConfig:
        """How revisions are built, with the modules the repro imports."""
        return BuildConfig(
            command=self.build_cmd,
            interpreter=self.interpreter,
            jobs=self.jobs,
            timeout=self.build_timeout,
            flavour=self.flavour or Flavour.PYDEBUG,
            configure_flags=self.configure_flags,
            workarounds=tuple(parse_workaround(spec) for spec in self.workarounds),
            use_ccache=self.ccache,
        ).for_repros([self.repro])


def hunt_key(options: HuntOptions, git_dir: Path, good: str, bad: str) -> str:
    """Everything that decides a hunt's answer: equal keys resume, different ones start afresh.

    The options marked `in_key`, as the words that give them, plus the repository, the
    resolved ends and the repro's content.
    """
    values = option_values(options, RUN_OPTIONS)
    what: dict[str, object] = {
        option.name: option.argv(values[option.name])
        for option in RUN_OPTIONS
        if option.in_key and values[option.name] is not None
    }
    what |= {
        "repo": str(git_dir),
        "ends": [good, bad],
        "repro_text": hashlib.sha256(options.repro.read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def reproduce_command(options: HuntOptions, good: str, bad: str) -> str:
    """The `finbisect run` line that repeats this hunt, with the ends pinned to shas."""
    pinned = replace(options, good=good, bad=bad)
    return shlex.join(to_argv(["finbisect", "run"], pinned, RUN_OPTIONS))
