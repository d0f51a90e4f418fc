"""Run every recipe's repro on real builds and print (or write) its `[[measured]]` rows.

    flock /work/hist/cpu.lock .venv/bin/python benchmarks/measure_recipes.py \
        py27=/work/hist/py27 py27+bpo1856=PATH py39=/work/hist/py39 \
        py3135=/work/hist/py3135 py31315=/work/hist/py31315 \
        [--runs 10] [--only ID,...] [--cache-dir DIR] [--write]

Each NAME=PATH is a CPython history; its tip (HEAD) is built with finbisect's
own builder (the recipe's flavour and build flags, only the modules its repro
needs, the build cache shared between runs of this script) and the repro is
run `--runs` times with the recipe's symptom, match and timeout, exactly as a
hunt would judge one revision. A recipe is measured on every tree whose
version its repro is meant for (`applies`). `--write` appends the rows to the
recipes' TOML files (recipes/*.toml); without it they are printed as TOML.
The tree label records NAME, branch and commit, so a row says what was run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from finbisect.build.builder import BuildConfig, Builder
from finbisect.build.cache import BuildCache
from finbisect.build.cpython import parse_version
from finbisect.models import RunClass
from finbisect.recipes.catalog import Recipe, load_all
from finbisect.recipes.measured import Measurement
from finbisect.repo.gitrepo import UserRepo, locked_workspace
from finbisect.runs.probe import Probe, ProbeConfig

ROOT = Path(__file__).resolve().parent.parent
# Which recipes a version's build can show anything for: a repro meant for
# other releases runs, but its row would say nothing (bpo-21963 exits 0 on 3.x
# by design). Keys are recipe ids; values the major.minor prefixes they apply to.
APPLIES: dict[str, tuple[str, ...]] = {
    "bpo-21963": ("2.7",),
    "bpo-36402": ("3.",),  # Python 3 code: on 2.7 every run is an error
    "gh-96387": ("3.",),
}


def applies(recipe: Recipe, version: str) -> bool:
    prefixes = APPLIES.get(recipe.id)
    return prefixes is None or version.startswith(prefixes)


def _version(path: Path) -> str:
    text = subprocess.run(
        ["git", "-C", str(path), "show", "HEAD:Include/patchlevel.h"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', text)
    if found is None or parse_version(text) is None:
        raise SystemExit(f"{path}: no PY_VERSION in Include/patchlevel.h")
    return found.group(1).rstrip("+")


def measure(name: str, path: Path, recipe: Recipe, runs: int, cache_dir: Path) -> Measurement | str:
    """One row, or why the tree could not be measured for this recipe."""
    version = _version(path)
    if not applies(recipe, version):
        return f"{name}: {version} is outside what the repro is meant for"
    user = UserRepo(path)
    sha = user.resolve("HEAD")
    with locked_workspace(cache_dir, user) as workspace:
        workspace.refresh([sha])
        logs = cache_dir / "measure-logs"
        logs.mkdir(parents=True, exist_ok=True)
        config = BuildConfig(
            command=None,
            interpreter="python",
            jobs=os.cpu_count() or 1,
            timeout=3600,
            flavour=recipe.flavour,
            configure_flags=recipe.build_flags,
        ).for_repros([recipe.repro])
        builder = Builder(workspace, config, logs, BuildCache(cache_dir / "builds"))
        unsupported = builder.unsupported(sha)
        if unsupported:
            return f"{name}: {unsupported}"
        built = builder.build(sha)
        if not built.ok or built.interpreter is None:
            return f"{name}: build failed: {built.reason}"
        match = re.compile(recipe.match) if recipe.match else None
        probe = Probe(
            ProbeConfig(
                repro=recipe.repro,
                timeout=recipe.timeout,
                symptoms=frozenset(recipe.symptom),
                match=match,
                scratch=Path(tempfile.gettempdir()),
            ),
            logs,
        )
        outcomes = probe.run(built.interpreter, sha, runs=runs)
    symptoms = [o for o in outcomes if o.run_class is RunClass.SYMPTOM]
    kinds = Counter(o.kind.value for o in outcomes)
    return Measurement(
        version=version,
        flavour=recipe.flavour,
        tree=f"{name} HEAD {sha[:10]}",
        runs=runs,
        symptoms=len(symptoms),
        kinds=dict(kinds),
        signature=symptoms[0].signature if symptoms else "",
        date=datetime.date.today().isoformat(),
    )


def toml_row(m: Measurement) -> str:
    kinds = ", ".join(f"{k} = {v}" for k, v in sorted(m.kinds.items()))
    return (
        "[[measured]]\n"
        f'version = "{m.version}"\nflavour = "{m.flavour.value}"\ntree = "{m.tree}"\n'
        f"runs = {m.runs}\nsymptoms = {m.symptoms}\nkinds = {{ {kinds} }}\n"
        f"signature = {_quote(m.signature)}\ndate = {m.date}\n"
    )


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="NAME=PATH of a CPython history")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated recipe ids")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/finbisect-measure"))
    parser.add_argument("--write", action="store_true", help="append rows to recipes/*.toml")
    args = parser.parse_args()
    only = {i for i in args.only.split(",") if i}
    recipes = [r for r in load_all(ROOT / "recipes") if not only or r.id in only]
    for recipe in recipes:
        rows: list[str] = []
        for spec in args.trees:
            name, _, path = spec.partition("=")
            got = measure(name, Path(path), recipe, args.runs, args.cache_dir)
            if isinstance(got, str):
                print(f"# {recipe.id}: {got}", flush=True)
                continue
            rows.append(toml_row(got))
            print(f"# {recipe.id}\n{rows[-1]}", flush=True)
        if args.write and rows and recipe.path is not None:
            with recipe.path.open("a") as out:
                out.write("\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
