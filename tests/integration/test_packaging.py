"""What a user gets from `pip install finbisect`, not only from this checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from finbisect.recipes.catalog import load_all

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_recipes_and_the_demo_sources(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("finbisect-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in load_all():
        for path in (recipe.repro, recipe.repro.with_suffix(".toml")):
            assert f"finbisect/recipes/files/{path.name}" in names
    assert any(name.startswith("finbisect/testing/minipy_src/") for name in names)
