"""Which CPython versions and flavours finbisect's own build handles, and how fast.

For each history (NAME=DIR, a git repository whose root commit is a release
tarball), and each flavour: the first commit is built cold in a fresh cache
(no ccache), then the last commit in the same builder, as a hunt moves between
revisions (the builder picks its tree; no ccache). A flavour whose configure
lacks it is refused with finbisect's reason, not built.

    .venv/bin/python benchmarks/build_matrix.py py27=/work/hist/py27 --json out.json

Without NAME=DIR the four histories are made with tools/cpython-history-from-debian
(needs root and apt) under --workdir.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from finbisect.build.builder import BuildConfig, Builder, BuildResult
from finbisect.build.cache import BuildCache
from finbisect.models import Flavour
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from finbisect.runs.machine import machine_facts

_TOOL = Path(__file__).resolve().parent.parent / "tools" / "cpython-history-from-debian"
# name -> the tool's arguments (suite, package, version)
_HISTORIES = {
    "py27": ("bullseye", "python2.7", ""),
    "py39": ("bullseye", "python3.9", ""),
    "py3135": ("trixie", "python3.13", ""),
    "py31315": ("forky", "python3.13", "3.13.15-1"),
}
# What the build check must import: the threading repro's modules.
_REQUIRED = ("threading",)


@dataclass(frozen=True, kw_only=True)
class Cell:
    history: str
    version: str
    flavour: str
    builds: str  # "yes", "no", "refused"
    check: str  # the build check's verdict ("ok" or why not)
    cold_s: float | None
    incremental_s: float | None
    incremental_tree: str  # "same" tree reused, or "fresh" (the builder chose a new one)
    reason: str


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _ends(repo: Path) -> tuple[str, str]:
    shas = _git(repo, "rev-list", "--reverse", "--first-parent", "main").split()
    return shas[0], shas[-1]


def _version(repo: Path, sha: str) -> str:
    text = _git(repo, "show", f"{sha}:Include/patchlevel.h")
    for line in text.splitlines():
        if line.startswith("#define PY_VERSION "):
            return line.split()[2].strip('"')
    return "?"


def _config(flavour: Flavour, jobs: int) -> BuildConfig:
    return BuildConfig(
        command=None,
        interpreter="python",
        jobs=jobs,
        timeout=3600.0,
        flavour=flavour,
        extension_modules=False,  # what the threading repro needs, as a hunt would build
        required_modules=_REQUIRED,
        use_ccache=False,  # cold and incremental figures are make's, not ccache's
    )


def _why(result: BuildResult) -> str:
    lines = " | ".join(result.error_lines[:2])
    return f"{result.reason}: {lines}" if lines else result.reason


def _not_built(
    base: dict[str, str], builds: str, reason: str, check: str, seconds: float | None
) -> Cell:
    return Cell(
        history=base["history"], version=base["version"], flavour=base["flavour"],
        builds=builds, check=check, cold_s=seconds, incremental_s=None,
        incremental_tree="-", reason=reason,
    )  # fmt: skip


def measure(name: str, repo: Path, flavour: Flavour, jobs: int, scratch: Path) -> Cell:
    first, last = _ends(repo)
    version = _version(repo, first)
    cache_dir = scratch / f"{name}-{flavour.value}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    base = {"history": name, "version": version, "flavour": flavour.value}
    try:
        with locked_workspace(cache_dir, UserRepo(repo)) as workspace:
            workspace.refresh([first, last])
            builder = Builder(
                workspace, _config(flavour, jobs), cache_dir / "logs",
                BuildCache(cache_dir / "builds"),
            )  # fmt: skip
            if (refused := builder.unsupported(first)) is not None:
                return _not_built(base, "refused", refused, "-", None)
            cold = builder.build(first)
            if not cold.ok:  # the seconds it took to fail
                return _not_built(base, "no", _why(cold), cold.reason, round(cold.seconds, 1))
            first_tree = builder.tree
            inc = builder.build(last)
            tree = "same" if builder.tree == first_tree else "fresh"
            return Cell(
                **base,
                builds="yes" if inc.ok else "first only",
                check="ok" if inc.ok else inc.reason,
                cold_s=round(cold.seconds, 1),
                incremental_s=round(inc.seconds, 1),
                incremental_tree=tree,
                reason="" if inc.ok else _why(inc),
            )
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)  # trees are hundreds of MB each


def _make_history(name: str, workdir: Path) -> Path:
    dest = workdir / name
    if not dest.exists():
        suite, package, version = _HISTORIES[name]
        subprocess.run([str(_TOOL), suite, package, str(dest), *([version] if version else [])],
                       check=True)  # fmt: skip
    return dest


def table(cells: list[Cell]) -> str:
    flavours = [f.value for f in Flavour]
    rows = ["| version | " + " | ".join(flavours) + " |", "|---" * (len(flavours) + 1) + "|"]
    notes: list[str] = []
    for history in dict.fromkeys(c.history for c in cells):
        mine = {c.flavour: c for c in cells if c.history == history}
        version = next(iter(mine.values())).version
        row = [f"{version} ({history})"]
        for flavour in flavours:
            cell = mine.get(flavour)
            if cell is None:
                row.append("not measured")
            elif cell.builds == "yes":
                row.append(f"yes: cold {cell.cold_s} s, incr. {cell.incremental_s} s"
                           f" ({cell.incremental_tree} tree)")  # fmt: skip
            else:
                notes.append(f"{len(notes) + 1}. {version} {flavour}: {cell.reason}")
                row.append(f"{cell.builds} [{len(notes)}]")
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join([*rows, *(["", *notes] if notes else [])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("histories", nargs="*", metavar="NAME=DIR")
    parser.add_argument("--flavour", action="append", choices=[f.value for f in Flavour])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    default_workdir = Path(tempfile.gettempdir()) / "finbisect-eras"
    parser.add_argument("--workdir", type=Path, default=default_workdir)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="print the table of earlier runs' JSON, building nothing")  # fmt: skip
    args = parser.parse_args()
    if args.table:
        documents = [json.loads(path.read_text()) for path in args.table]
        print(table([Cell(**cell) for doc in documents for cell in doc["cells"]]))
        for doc in documents:
            print(f"\n{doc['date'][:16].replace('T', ' ')} UTC, jobs={doc['jobs']}, "
                  + ", ".join(f"{k} {v}" for k, v in doc["machine"].items()))  # fmt: skip
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.histories:
        pairs = [h.split("=", 1) for h in args.histories]
        histories = {name: Path(path) for name, path in pairs}
    else:
        histories = {name: _make_history(name, args.workdir) for name in _HISTORIES}
    flavours = [Flavour(f) for f in args.flavour] if args.flavour else list(Flavour)
    started = datetime.datetime.now(datetime.UTC)
    facts = machine_facts()
    cells: list[Cell] = []
    for name, repo in histories.items():
        for flavour in flavours:
            cells.append(measure(name, repo, flavour, args.jobs, args.workdir / "builds"))
            print(f"# {name} {flavour.value}: {cells[-1].builds}", flush=True)
            if args.json:  # after every cell: a run cut short keeps what it measured
                document = {"version": 1, "date": started.isoformat(), "jobs": args.jobs,
                            "machine": facts, "cells": [asdict(c) for c in cells]}  # fmt: skip
                args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(table(cells))
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, jobs={args.jobs}, "
          + ", ".join(f"{k} {v}" for k, v in facts.items()))  # fmt: skip


if __name__ == "__main__":
    main()
