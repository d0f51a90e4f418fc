"""Recipes: one TOML file per known finalization bug, next to its repro script.

A recipe names the bug (links and sources where the facts come from), says
how its repro shows the symptom (kinds, signature regex, timeout, build
flavour) and suggests hunts with the culprit history records, when it does.
Loading validates strictly: unknown keys, wrong types and bad values are
refused with a one-line :class:`UsageError` naming the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finbisect.errors import UsageError
from finbisect.models import Flavour, HuntKind, OutcomeKind
from finbisect.recipes.measured import Measurement, parse_measurement

__all__ = [
    "SYMPTOM_KINDS",
    "Recipe",
    "RecipeHunt",
    "RecipeLinks",
    "bundled_recipes_dir",
    "find_recipe",
    "load_all",
    "load_recipe",
    "recipe_to_dict",
]

SYMPTOM_KINDS = (OutcomeKind.CRASH, OutcomeKind.HANG, OutcomeKind.ERROR)

_ID_RE = re.compile(r"^[a-z][a-z0-9]*-[0-9]+[a-z0-9-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
_TOP_KEYS = {
    "id",
    "title",
    "description",
    "repro",
    "symptom",
    "match",
    "timeout",
    "flavour",
    "build_flags",
    "links",
    "hunt",
    "measured",
    "not_measured",
}
_REQUIRED = ("id", "title", "description", "repro", "symptom", "timeout", "flavour")
_LINK_KEYS = {"bpo", "gh", "commits", "sources"}
_HUNT_KEYS = {"kind", "good", "bad", "culprit", "note"}
_MAX_TIMEOUT = 3600.0


@dataclass(frozen=True, kw_only=True)
class RecipeLinks:
    bpo: tuple[str, ...] = ()
    gh: tuple[str, ...] = ()
    commits: tuple[str, ...] = ()  # full hashes where confirmed
    sources: tuple[str, ...] = ()  # where the facts were found


@dataclass(frozen=True, kw_only=True)
class RecipeHunt:
    kind: HuntKind
    good: str
    bad: str
    culprit: str | None = None  # the commit history records, when it does
    note: str = ""  # what could not be confirmed


@dataclass(frozen=True, kw_only=True)
class Recipe:
    id: str
    title: str
    description: str
    repro: Path  # absolute
    symptom: tuple[OutcomeKind, ...]
    match: str | None
    timeout: float
    flavour: Flavour
    build_flags: tuple[str, ...] = ()
    links: RecipeLinks = RecipeLinks()
    hunts: tuple[RecipeHunt, ...] = ()
    measured: tuple[Measurement, ...] = ()  # runs on real builds
    not_measured: str = ""  # what could not be measured here, and why
    path: Path | None = None  # the TOML file


class _Checker:
    """Type checks that raise one-line UsageErrors naming the file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str) -> UsageError:
        return UsageError(f"recipe {self.path}: {problem}")

    def keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(
                f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: " + ", ".join(unknown)
            )

    def string(self, value: object, key: str, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{key} must be a string, not {type(value).__name__}")
        if not empty and not value.strip():
            raise self.fail(f"{key} must not be empty")
        return value

    def strings(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(f"{key} must be an array of strings")
        return tuple(self.string(item, f"{key}[{i}]") for i, item in enumerate(value))

    def revision(self, value: object, key: str) -> str:
        text = self.string(value, key).strip()
        if any(c.isspace() for c in text) or text.startswith("-"):
            raise self.fail(f"{key} is not a git revision: {text!r}")
        return text


def _links(check: _Checker, raw: object) -> RecipeLinks:
    if not isinstance(raw, dict):
        raise check.fail("links must be a table")
    check.keys(raw, _LINK_KEYS, "[links]")
    values = {key: check.strings(raw.get(key, []), f"links.{key}") for key in _LINK_KEYS}
    for commit in values["commits"]:
        if not _SHA_RE.match(commit):
            raise check.fail(f"links.commits has a non-hash entry: {commit!r}")
    return RecipeLinks(**values)


def _hunt(check: _Checker, raw: object, index: int) -> RecipeHunt:
    where = f"hunt[{index}]"
    if not isinstance(raw, dict):
        raise check.fail(f"{where} must be a table ([[hunt]])")
    check.keys(raw, _HUNT_KEYS, where)
    for key in ("kind", "good", "bad"):
        if key not in raw:
            raise check.fail(f"{where} is missing required key {key!r}")
    kind_text = check.string(raw["kind"], f"{where}.kind")
    try:
        kind = HuntKind(kind_text)
    except ValueError:
        raise check.fail(
            f"{where}.kind must be one of {', '.join(k.value for k in HuntKind)}, not {kind_text!r}"
        ) from None
    good = check.revision(raw["good"], f"{where}.good")
    bad = check.revision(raw["bad"], f"{where}.bad")
    if good == bad:
        raise check.fail(f"{where}: good and bad are the same revision {good!r}")
    culprit = None
    if "culprit" in raw:
        culprit = check.revision(raw["culprit"], f"{where}.culprit")
        if not _SHA_RE.match(culprit):
            raise check.fail(f"{where}.culprit must be a commit hash, not {culprit!r}")
    note = check.string(raw.get("note", ""), f"{where}.note", empty=True)
    return RecipeHunt(kind=kind, good=good, bad=bad, culprit=culprit, note=note.strip())


def _symptom(check: _Checker, raw: object) -> tuple[OutcomeKind, ...]:
    names = check.strings(raw, "symptom")
    if not names:
        raise check.fail("symptom must name at least one kind")
    allowed = ", ".join(k.value for k in SYMPTOM_KINDS)
    kinds: list[OutcomeKind] = []
    for name in names:
        try:
            kind = OutcomeKind(name)
        except ValueError:
            kind = None
        if kind not in SYMPTOM_KINDS:
            raise check.fail(f"symptom {name!r} is not one of {allowed}")
        assert kind is not None
        if kind in kinds:
            raise check.fail(f"symptom {name!r} is listed twice")
        kinds.append(kind)
    return tuple(kinds)


def _timeout(check: _Checker, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise check.fail(f"timeout must be a number of seconds, not {type(raw).__name__}")
    value = float(raw)
    if not 0 < value <= _MAX_TIMEOUT:
        raise check.fail(f"timeout must be > 0 and <= {_MAX_TIMEOUT:g} seconds, not {raw}")
    return value


def _read_toml(check: _Checker) -> dict[str, Any]:
    try:
        return tomllib.loads(check.path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise check.fail(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise check.fail("not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise check.fail(f"invalid TOML: {exc}") from None


def _match(check: _Checker, raw: object) -> str:
    pattern = check.string(raw, "match")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise check.fail(f"match is not a valid regex: {exc}") from None
    return pattern


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate one recipe TOML; the repro must exist beside it."""
    path = Path(path).resolve()
    check = _Checker(path)
    data = _read_toml(check)

    check.keys(data, _TOP_KEYS, "the top level")
    for key in _REQUIRED:
        if key not in data:
            raise check.fail(f"missing required key {key!r}")

    recipe_id = check.string(data["id"], "id").strip()
    if not _ID_RE.match(recipe_id):
        raise check.fail(f"id must look like 'bpo-9901' or 'gh-96387', not {recipe_id!r}")
    title = check.string(data["title"], "title").strip()
    if "\n" in title:
        raise check.fail("title must be one line")
    description = check.string(data["description"], "description").strip()

    repro_name = check.string(data["repro"], "repro").strip()
    if Path(repro_name).is_absolute():
        raise check.fail("repro must be a path relative to the recipe")
    repro = (path.parent / repro_name).resolve()
    if not repro.is_file():
        raise check.fail(f"repro file not found: {repro}")

    symptom = _symptom(check, data["symptom"])
    match = _match(check, data["match"]) if "match" in data else None

    flavour_text = check.string(data["flavour"], "flavour").strip()
    try:
        flavour = Flavour(flavour_text)
    except ValueError:
        names = ", ".join(f.value for f in Flavour)
        raise check.fail(f"flavour must be one of {names}, not {flavour_text!r}") from None
    build_flags = check.strings(data.get("build_flags", []), "build_flags")

    links = _links(check, data.get("links", {}))
    raw_hunts = data.get("hunt", [])
    if not isinstance(raw_hunts, list):
        raise check.fail("hunt must be an array of tables ([[hunt]])")
    hunts = tuple(_hunt(check, raw, i) for i, raw in enumerate(raw_hunts))
    raw_measured = data.get("measured", [])
    if not isinstance(raw_measured, list):
        raise check.fail("measured must be an array of tables ([[measured]])")
    measured = tuple(
        parse_measurement(raw, f"recipe {path}: measured[{i}]")
        for i, raw in enumerate(raw_measured)
    )
    not_measured = check.string(data.get("not_measured", ""), "not_measured", empty=True).strip()

    return Recipe(
        id=recipe_id,
        title=title,
        description=description,
        repro=repro,
        symptom=symptom,
        match=match,
        timeout=_timeout(check, data["timeout"]),
        flavour=flavour,
        build_flags=build_flags,
        links=links,
        hunts=hunts,
        measured=measured,
        not_measured=not_measured,
        path=path,
    )


def bundled_recipes_dir() -> Path:
    """The recipes shipped with finbisect.

    They live in the project's ``recipes/``; ``finbisect/recipes/files`` links there,
    so that a wheel carries them as package data.
    """
    return Path(__file__).resolve().parent / "files"


def load_all(directory: str | Path | None = None) -> list[Recipe]:
    """Every ``*.toml`` recipe in *directory* (default: bundled), sorted by id."""
    root = Path(directory) if directory is not None else bundled_recipes_dir()
    if not root.is_dir():
        raise UsageError(f"recipe directory not found: {root}")
    recipes = [load_recipe(p) for p in sorted(root.glob("*.toml"))]
    seen: dict[str, Path | None] = {}
    for recipe in recipes:
        if recipe.id in seen:
            raise UsageError(
                f"recipe id {recipe.id!r} is defined twice: {seen[recipe.id]} and {recipe.path}"
            )
        seen[recipe.id] = recipe.path
    return sorted(recipes, key=lambda r: r.id)


def find_recipe(id_or_path: str | Path, directory: str | Path | None = None) -> Recipe:
    """A recipe by id (``bpo-9901``) among *directory*'s, or by TOML path."""
    text = str(id_or_path)
    candidate = Path(text)
    if text.endswith(".toml") or candidate.is_file():
        return load_recipe(candidate)
    root = Path(directory) if directory is not None else bundled_recipes_dir()
    direct = root / f"{text}.toml"
    if direct.is_file():
        recipe = load_recipe(direct)
        if recipe.id == text:
            return recipe
    recipes = load_all(root)
    for recipe in recipes:
        if recipe.id == text:
            return recipe
    known = ", ".join(r.id for r in recipes) or "none"
    raise UsageError(f"no recipe {text!r} in {root} (known: {known})")


def recipe_to_dict(recipe: Recipe) -> dict[str, object]:
    """Plain JSON-ready form (paths as strings, enums as their values)."""
    return {
        "id": recipe.id,
        "title": recipe.title,
        "description": recipe.description,
        "repro": str(recipe.repro),
        "symptom": [kind.value for kind in recipe.symptom],
        "match": recipe.match,
        "timeout": recipe.timeout,
        "flavour": recipe.flavour.value,
        "build_flags": list(recipe.build_flags),
        "links": {
            "bpo": list(recipe.links.bpo),
            "gh": list(recipe.links.gh),
            "commits": list(recipe.links.commits),
            "sources": list(recipe.links.sources),
        },
        "hunts": [
            {
                "kind": hunt.kind.value,
                "good": hunt.good,
                "bad": hunt.bad,
                "culprit": hunt.culprit,
                "note": hunt.note,
            }
            for hunt in recipe.hunts
        ],
        "measured": [m.to_toml_table() for m in recipe.measured],
        "not_measured": recipe.not_measured,
        "path": str(recipe.path) if recipe.path is not None else None,
    }
