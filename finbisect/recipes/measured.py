"""What a recipe's repro did on real builds: `[[measured]]` rows, and why some recipes
have none (`not_measured`). Written by benchmarks/measure_recipes.py, checked on load."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finbisect.errors import UsageError
from finbisect.models import Flavour

__all__ = ["MEASURED_KEYS", "Measurement", "format_measurements", "parse_measurement"]

MEASURED_KEYS = {"version", "flavour", "tree", "runs", "symptoms", "kinds", "signature", "date"}
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?\S*$")


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """The recipe's repro run `runs` times on one real build."""

    version: str  # "2.7.18", "3.13.15"
    flavour: Flavour
    tree: str  # which tree and commit ("py27 main 1a2b3c4d5e", "3.13.5 tarball")
    runs: int
    symptoms: int  # runs that showed the recipe's symptom (its kinds and match)
    kinds: Mapping[str, int]  # every run by outcome kind: ok, crash, hang, error
    signature: str  # the symptom's signature as seen ("" when none showed)
    date: str  # ISO date of the measurement

    def to_toml_table(self) -> dict[str, Any]:
        return {
            "version": self.version, "flavour": self.flavour.value, "tree": self.tree,
            "runs": self.runs, "symptoms": self.symptoms, "kinds": dict(self.kinds),
            "signature": self.signature, "date": self.date,
        }  # fmt: skip


def parse_measurement(raw: object, where: str) -> Measurement:
    """One `[[measured]]` table, checked; UsageError naming `where` when wrong."""
    if not isinstance(raw, dict):
        raise UsageError(f"{where} must be a table ([[measured]])")
    unknown = sorted(set(raw) - MEASURED_KEYS)
    missing = sorted(MEASURED_KEYS - set(raw))
    if unknown or missing:
        raise UsageError(f"{where}: unknown keys {unknown}, missing keys {missing}")
    try:
        flavour = Flavour(raw["flavour"])
        kinds = {str(k): int(v) for k, v in dict(raw["kinds"]).items()}
        date = datetime.date.fromisoformat(str(raw["date"])).isoformat()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}: {exc}") from None
    version, runs, symptoms = raw["version"], raw["runs"], raw["symptoms"]
    if not (isinstance(version, str) and _VERSION.match(version)):
        raise UsageError(f"{where}: version must look like 3.13.5, not {version!r}")
    if not (isinstance(runs, int) and isinstance(symptoms, int) and 0 <= symptoms <= runs):
        raise UsageError(f"{where}: need whole numbers 0 <= symptoms <= runs")
    if sum(kinds.values()) != runs:
        raise UsageError(f"{where}: kinds add up to {sum(kinds.values())}, not {runs} runs")
    return Measurement(
        version=version, flavour=flavour, tree=str(raw["tree"]), runs=runs, symptoms=symptoms,
        kinds=kinds, signature=str(raw["signature"]), date=date,
    )  # fmt: skip


def format_measurements(measured: tuple[Measurement, ...], not_measured: str) -> list[str]:
    """Lines for `finbisect recipes show`."""
    if not measured:
        return [
            f"measured: nothing yet — {not_measured}" if not_measured else "measured: nothing yet"
        ]
    lines = ["measured on real builds:"]
    for m in measured:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(m.kinds.items()) if v)
        seen = f"; {m.signature}" if m.signature else ""
        lines.append(
            f"  {m.version:<8} {m.flavour.value:<8} {m.symptoms:>3}/{m.runs:<4} "
            f"({kinds}) {m.date} [{m.tree}]{seen}"
        )
    if not_measured:
        lines.append(f"  not measured: {not_measured}")
    return lines
