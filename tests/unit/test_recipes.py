"""Bundled recipes validate, bad recipes are refused, every repro is healthy here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from finbisect.errors import UsageError
from finbisect.models import HuntKind, OutcomeKind
from finbisect.output.terminal import format_recipe
from finbisect.recipes.catalog import (
    Recipe,
    bundled_recipes_dir,
    find_recipe,
    load_all,
    load_recipe,
    recipe_to_dict,
)

REQUIRED_IDS = {
    "bpo-9901",
    "bpo-1856",
    "bpo-21963",
    "bpo-36402",
    "bpo-39877",
    "gh-96387",
    "gh-113964",
}

GOOD = """\
id = "bpo-1"
title = "t"
description = "d"
repro = "r.py"
symptom = ["crash", "hang"]
match = "Fatal Python error: .*"
timeout = 5
flavour = "pydebug"
build_flags = ["--with-assertions"]

[links]
bpo = ["1"]
commits = ["b0b384b7c0333bf1183cd6f90c0a3f9edaadd6b9"]

[[hunt]]
kind = "fix"
good = "v3.2a3"
bad = "v3.2a2"
culprit = "b0b384b7c0333bf1183cd6f90c0a3f9edaadd6b9"
"""

BUNDLED = load_all()


def _write(tmp_path: Path, text: str, *, repro: bool = True) -> Path:
    if repro:
        (tmp_path / "r.py").write_text("pass\n")
    path = tmp_path / "bpo-1.toml"
    path.write_text(text)
    return path


def test_bundled_recipes_cover_the_named_bugs() -> None:
    assert {r.id for r in BUNDLED} >= REQUIRED_IDS
    assert [r.id for r in BUNDLED] == sorted(r.id for r in BUNDLED)


@pytest.mark.parametrize("recipe", BUNDLED, ids=lambda r: r.id)
def test_bundled_recipe_is_consistent(recipe: Recipe) -> None:
    assert recipe.path is not None
    assert recipe.path.stem == recipe.id
    assert recipe.repro.is_file()
    assert recipe.repro.parent == bundled_recipes_dir().resolve()
    assert recipe.hunts, "every bundled recipe suggests at least one hunt"
    assert recipe.links.sources, "every bundled recipe cites where its facts come from"
    for commit in recipe.links.commits:
        assert len(commit) == 40, "links.commits holds full hashes only"
    for hunt in recipe.hunts:
        if hunt.culprit is None:
            assert hunt.note, "a hunt without culprit says why"
    # Run on real builds (benchmarks/measure_recipes.py), or why it could not be.
    assert recipe.measured or recipe.not_measured
    # A hang symptom needs no match; a script-side watchdog would need "error" + match.
    if OutcomeKind.ERROR in recipe.symptom:
        assert recipe.match
    json.dumps(recipe_to_dict(recipe))


@pytest.mark.parametrize("recipe", BUNDLED, ids=lambda r: r.id)
def test_repro_is_healthy_on_this_python(recipe: Recipe, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(recipe.repro)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=recipe.timeout,
        check=False,
    )
    output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, output
    assert "Fatal Python error" not in output
    if recipe.match:
        assert not re.search(recipe.match, output)


def test_load_good_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, GOOD))
    assert recipe.id == "bpo-1"
    assert recipe.symptom == (OutcomeKind.CRASH, OutcomeKind.HANG)
    assert recipe.timeout == 5.0
    assert recipe.build_flags == ("--with-assertions",)
    assert recipe.repro == (tmp_path / "r.py").resolve()
    (hunt,) = recipe.hunts
    assert hunt.kind is HuntKind.FIX
    assert hunt.culprit == "b0b384b7c0333bf1183cd6f90c0a3f9edaadd6b9"
    data = recipe_to_dict(recipe)
    assert data["symptom"] == ["crash", "hang"]
    assert data["hunts"] == [
        {
            "kind": "fix",
            "good": "v3.2a3",
            "bad": "v3.2a2",
            "culprit": "b0b384b7c0333bf1183cd6f90c0a3f9edaadd6b9",
            "note": "",
        }
    ]


def test_optional_keys_may_be_omitted(tmp_path: Path) -> None:
    text = "\n".join(
        line
        for line in GOOD.splitlines()
        if not line.startswith(("match", "build_flags", "culprit"))
    )
    recipe = load_recipe(_write(tmp_path, text))
    assert recipe.match is None
    assert recipe.build_flags == ()
    assert recipe.hunts[0].culprit is None


BAD_CASES = [
    ("missing key", GOOD.replace('title = "t"\n', ""), "missing required key 'title'"),
    (
        "unknown key",
        GOOD.replace('flavour = "pydebug"', 'flavour = "pydebug"\nflavor = "x"'),
        "unknown key",
    ),
    ("unknown link key", GOOD.replace('bpo = ["1"]', 'bpo = ["1"]\nbugs = ["1"]'), "unknown key"),
    ("unknown hunt key", GOOD.replace('kind = "fix"', 'kind = "fix"\nfirst = "x"'), "unknown key"),
    ("bad symptom", GOOD.replace('["crash", "hang"]', '["segfault"]'), "symptom 'segfault'"),
    ("ok is not a symptom", GOOD.replace('["crash", "hang"]', '["ok"]'), "symptom 'ok'"),
    ("empty symptom", GOOD.replace('["crash", "hang"]', "[]"), "at least one"),
    ("symptom not a list", GOOD.replace('["crash", "hang"]', '"crash"'), "array"),
    ("bad regex", GOOD.replace('"Fatal Python error: .*"', '"(unclosed"'), "not a valid regex"),
    ("bad flavour", GOOD.replace('"pydebug"', '"debug"'), "flavour"),
    ("bad timeout type", GOOD.replace("timeout = 5", 'timeout = "5"'), "timeout"),
    ("zero timeout", GOOD.replace("timeout = 5", "timeout = 0"), "timeout"),
    ("bool timeout", GOOD.replace("timeout = 5", "timeout = true"), "timeout"),
    ("bad hunt kind", GOOD.replace('kind = "fix"', 'kind = "bisect"'), "kind"),
    ("hunt missing bad", GOOD.replace('bad = "v3.2a2"\n', ""), "missing required key 'bad'"),
    ("good equals bad", GOOD.replace('"v3.2a2"', '"v3.2a3"'), "same revision"),
    ("culprit not a hash", GOOD.replace('culprit = "b0b', 'culprit = "HEAD b0b'), "culprit"),
    ("bad commit", GOOD.replace('commits = ["b0b384', 'commits = ["zz'), "non-hash"),
    ("bad id", GOOD.replace('id = "bpo-1"', 'id = "Issue 1"'), "id must"),
    ("invalid toml", GOOD + "\n[[[", "invalid TOML"),
    ("absolute repro", GOOD.replace('repro = "r.py"', 'repro = "/bin/sh"'), "relative"),
]


@pytest.mark.parametrize(
    ("text", "problem"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_recipe_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        load_recipe(path)
    message = info.value.message
    assert "\n" not in message
    assert str(path) in message
    assert problem in message


def test_missing_repro_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, repro=False)
    with pytest.raises(UsageError, match="repro file not found"):
        load_recipe(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_recipe(tmp_path / "nope.toml")


def test_find_recipe_by_id_and_path(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    assert find_recipe("bpo-1", tmp_path).id == "bpo-1"
    assert find_recipe(str(path)).id == "bpo-1"
    assert find_recipe("bpo-9901").id == "bpo-9901"
    with pytest.raises(UsageError, match="no recipe 'bpo-2'"):
        find_recipe("bpo-2", tmp_path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    (tmp_path / "other.toml").write_text(GOOD)
    with pytest.raises(UsageError, match="defined twice"):
        load_all(tmp_path)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_all(tmp_path / "absent")


MEASURED = """
not_measured = "3.2 trees cannot be built here"

[[measured]]
version = "2.7.18"
flavour = "release"
tree = "py27 main 0123456789"
runs = 20
symptoms = 20
kinds = { hang = 20 }
signature = "deadlocked: main thread in lock_PyThread_acquire_lock"
date = "2026-12-02"
"""


def test_measured_rows_are_read_and_shown(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, GOOD.replace("[links]", MEASURED + "\n[links]")))
    (row,) = recipe.measured
    assert (row.version, row.runs, row.symptoms, dict(row.kinds)) == (
        "2.7.18",
        20,
        20,
        {"hang": 20},
    )
    assert recipe.not_measured == "3.2 trees cannot be built here"
    shown = format_recipe(recipe)
    assert "2.7.18   release   20/20" in shown
    assert "not measured: 3.2 trees cannot be built here" in shown


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("hang = 20", "hang = 19"), "kinds add up to 19, not 20 runs"),
        (("symptoms = 20", "symptoms = 21"), "0 <= symptoms <= runs"),
        (('flavour = "release"', 'flavour = "fast"'), "'fast' is not a valid Flavour"),
        (('date = "2026-12-02"', 'date = "yesterday"'), "Invalid isoformat"),
    ],
)
def test_bad_measured_rows_are_refused(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    text = GOOD.replace("[links]", MEASURED.replace(*change) + "\n[links]")
    with pytest.raises(UsageError, match=re.escape(problem)):
        load_recipe(_write(tmp_path, text))
