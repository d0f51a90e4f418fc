"""`finbisect recipes` and `finbisect run --recipe`."""

from __future__ import annotations

import json
from pathlib import Path

from finbisect.testing.histories import linear_history
from tests.conftest import REPRO, invoke


def test_recipes_lists_every_bundled_recipe() -> None:
    result = invoke("recipes")
    assert result.exit_code == 0
    assert "bpo-9901" in result.stdout
    assert result.stdout.splitlines()[-1] == "7 recipes"


def test_recipes_as_json() -> None:
    result = invoke("recipes", "--format", "json")
    assert result.exit_code == 0
    recipes = json.loads(result.stdout)
    assert len(recipes) >= 7
    for recipe in recipes:
        assert {"id", "title", "symptom", "hunts"} <= set(recipe)
    assert "bpo-21963" in {r["id"] for r in recipes}


def test_recipes_show() -> None:
    result = invoke("recipes", "show", "bpo-21963")
    assert result.exit_code == 0
    assert "https://bugs.python.org/issue21963" in result.stdout
    assert "hunt 1: regression, good v2.7.7, bad v2.7.8" in result.stdout
    missing = invoke("recipes", "show", "bpo-0")
    assert missing.exit_code == 2
    assert "no recipe 'bpo-0'" in missing.stderr


def _recipe(tmp_path: Path, good: str, bad: str, *, symptom: str = "crash") -> Path:
    (tmp_path / "r.py").write_text(REPRO)
    toml = tmp_path / "gil.toml"
    toml.write_text(
        f"""id = "gh-99999"
title = "GIL destroyed at exit"
description = "minipy's bpo-9901"
repro = "r.py"
symptom = ["{symptom}"]
match = "gil_mutex"
timeout = 10
flavour = "pydebug"

[links]
bpo = ["9901"]

[[hunt]]
kind = "regression"
good = "{good}"
bad = "{bad}"
"""
    )
    return toml


def test_run_takes_everything_from_the_recipe(tmp_path: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=20, culprit=13, unrelated={5})
    toml = _recipe(tmp_path, history.good, history.bad)
    out = tmp_path / "out.json"
    result = invoke(
        "run", "--recipe", str(toml), "--repo", str(history.path), "--build-cmd", "make",
        "--runs", "1", "--cache-dir", str(tmp_path / "cache"), "--json", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["culprit"]["sha"] == history.culprit
    assert "--match gil_mutex" in result.stdout  # the reproduce line carries the recipe's match


def test_command_line_overrides_the_recipe(tmp_path: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=6, culprit=3)
    toml = _recipe(tmp_path, history.good, history.bad, symptom="error")
    result = invoke(
        "run", "--recipe", str(toml), "--repo", str(history.path), "--build-cmd", "make",
        "--symptom", "crash", "--runs", "1", "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_recipe_misuse(tmp_path: Path) -> None:
    history = linear_history(tmp_path / "repo", commits=4, culprit=2)
    toml = _recipe(tmp_path, history.good, history.bad)
    both = invoke("run", str(toml), "--recipe", str(toml), "--repo", str(history.path))
    assert both.exit_code == 2
    assert "not both" in both.stderr
    far = invoke("run", "--recipe", str(toml), "--hunt", "3", "--repo", str(history.path))
    assert far.exit_code == 2
    assert "suggests 1 hunts" in far.stderr
    neither = invoke("run", "--repo", str(history.path), "--good", "a", "--bad", "b")
    assert neither.exit_code == 2
    assert "missing REPRO" in neither.stderr
