"""The only place that formats for people (and the JSON for machines).

Rich on a terminal; plain text when piped or NO_COLOR is set. Progress goes
to stderr, the final report to stdout, the JSON to the file the user names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from finbisect.build.doctor import Check, Status
from finbisect.hunt.compare import COMPARE_VERSION, CompareResult
from finbisect.hunt.state import HuntState
from finbisect.links import bpo_url, commit_url, gh_issue_url, issue_refs
from finbisect.models import Commit, Rate, Result, Step, Verdict
from finbisect.output.evidence_text import evidence_lines
from finbisect.output.style import VERDICT_STYLE, clock, fancy
from finbisect.recipes.catalog import Recipe
from finbisect.recipes.measured import format_measurements

__all__ = [
    "compare_to_json",
    "format_checks",
    "format_compare",
    "format_hunt_list",
    "format_recipe",
    "format_recipe_list",
    "posterior_chart",
    "print_report",
    "write_json",
]


# -- final report ----------------------------------------------------------------
def print_report(result: Result, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    if fancy(stream):
        _print_rich(result, Console(file=stream))
    else:
        stream.write(_plain(result))


def _headline(result: Result) -> str:
    if result.culprit is not None:
        sure = f" (confidence {result.confidence:.3f})" if result.probabilistic else ""
        return f"{result.hunt.phrase} {result.culprit.sha}{sure}"
    if result.status == "rates inseparable":
        return (
            "inconclusive: the symptom's rates before and after the change are too close "
            "to tell apart within the run budget"
        )
    if result.candidates:
        return (
            f"inconclusive: the first {result.hunt.new_verdict.value} commit is one of "
            f"{len(result.candidates)} candidates"
        )
    return "inconclusive: no answer"


def rate_text(rate: Rate, digits: int = 2) -> str:
    """'0.36 (90% interval 0.26–0.46)'."""
    return f"{rate.estimate:.{digits}f} (90% interval {rate.low:.{digits}f}–{rate.high:.{digits}f})"


_BLOCKS = " ▁▂▃▄▅▆▇█"
_MARKS = {Verdict.GOOD: "g", Verdict.BAD: "b", Verdict.SKIP: "s"}


def posterior_chart(result: Result, width: int = 64) -> list[str]:
    """Where the posterior mass sits over the candidate range, oldest left, with the
    tested revisions marked below (g good, b bad, s skip). Empty for the classic search."""
    if not result.posterior:
        return []
    n = len(result.posterior)
    columns = min(width, n)
    mass = [0.0] * columns
    for i, probability in enumerate(result.posterior):
        mass[i * columns // n] += probability
    top = max(mass) or 1.0
    bars = "".join(_BLOCKS[round(m / top * (len(_BLOCKS) - 1))] for m in mass)
    marks = [" "] * columns
    position = {sha: i for i, sha in enumerate(result.candidate_shas)}
    for step in result.steps:
        if step.commit.sha in position:
            marks[position[step.commit.sha] * columns // n] = _MARKS[step.verdict]
    return [f"posterior |{bars}|", f"tested    |{''.join(marks)}|"]


def _two_sided_line(result: Result) -> str:
    good = [s for s in result.steps if s.verdict is Verdict.GOOD]
    symptoms, runs = sum(s.symptoms for s in good), sum(s.runs for s in good)
    if symptoms == 0:  # checked two-sided, but nothing ever showed on the good side
        return (
            f"two-sided model: the answer holds without assuming the good side never shows "
            f"the symptom (it showed in none of its {runs} runs)"
        )
    return (
        f"two-sided model: the symptom shows on both sides ({symptoms} of {runs} runs on the "
        "good side); the answer is where its rate changed"
    )


def _noise_lines(result: Result) -> list[str]:
    lines = [f"warning: {warning}" for warning in result.warnings]
    lines += [f"note: {note}" for note in result.notes]
    if result.slowdown is not None:
        lines.append(f"slowdown: {result.slowdown.ms:+.1f} ms ({result.slowdown.percent:+.1f}%)")
    if result.p_before is not None and result.p_after is not None:
        return [
            *lines,
            f"symptom rate before the culprit: {rate_text(result.p_before)}",
            f"symptom rate from the culprit on: {rate_text(result.p_after)}",
            _two_sided_line(result),
            *posterior_chart(result),
        ]
    if result.p is None:
        return lines
    return [
        *lines,
        f"symptom rate at the bad side: p ≈ {rate_text(result.p)}",
        "assumes no false positives: a revision without the bug never shows the symptom",
        *posterior_chart(result),
    ]


def _commit_lines(commit: Commit) -> list[str]:
    lines = [commit.subject, f"{commit.author}, {commit.date}"]
    lines += [f"{r['ref']}: {r['url']}" for r in issue_refs(commit.message)]
    return lines


def _totals(result: Result) -> str:
    return (
        f"{len(result.steps)} steps, {result.builds} builds ({result.cached_builds} reused), "
        f"{result.runs} runs, {clock(result.wall_seconds)} wall"
    )


def _step_row(number: int, step: Step) -> list[str]:
    return [
        str(number),
        step.commit.short,
        step.verdict.value,
        f"{step.timing.mean_ms:.1f} ms" if step.timing else f"{step.symptoms}/{step.runs}",
        f"{step.build_seconds:.1f}" + (" (cached)" if step.cached else ""),
        f"{step.run_seconds:.1f}",
        step.reason,
    ]


_COLUMNS = ["#", "commit", "verdict", "symptoms", "build s", "run s", "reason"]


def _plain(result: Result) -> str:
    ends = f"{result.good.short} (good) .. {result.bad.short} (bad)"
    out = [f"finbisect: {result.hunt.value} hunt {ends}"]
    out.append(_headline(result))
    if result.culprit is not None:
        out += [f"  {line}" for line in _commit_lines(result.culprit)]
    for commit, probability in zip(result.candidates, _probabilities(result), strict=True):
        out.append(f"  {commit.sha}  {probability}{commit.subject}")
    out += _noise_lines(result)
    out += evidence_lines(result)
    rows = [_COLUMNS] + [_step_row(i, s) for i, s in enumerate(result.steps, 1)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(_COLUMNS) - 1)]
    out.append("")
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.append("  ".join([*cells, row[-1]]).rstrip())
    out += ["", _totals(result), f"reproduce: {result.command}", ""]
    return "\n".join(out)


def _probabilities(result: Result) -> list[str]:
    return [f"{p:6.1%}  " if p is not None else "" for p in result.padded_probabilities()]


def _print_rich(result: Result, console: Console) -> None:
    style = "bold red" if result.culprit is not None else "bold yellow"
    console.print(
        f"[bold]finbisect[/]: {result.hunt.value} hunt "
        f"{result.good.short} (good) .. {result.bad.short} (bad)"
    )
    console.print(Text(_headline(result), style=style))
    if result.culprit is not None:
        for line in _commit_lines(result.culprit):
            console.print(Text(f"  {line}"))
    for commit, probability in zip(result.candidates, _probabilities(result), strict=True):
        console.print(Text(f"  {commit.sha}  {probability}{commit.subject}"))
    for line in [*_noise_lines(result), *evidence_lines(result)]:
        console.print(Text(line))
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in _COLUMNS:
        table.add_column(column, overflow="fold")
    for i, step in enumerate(result.steps, 1):
        row = _step_row(i, step)
        row[2] = f"[{VERDICT_STYLE[step.verdict]}]{row[2]}[/]"
        table.add_row(*row)
    console.print(table)
    console.print(_totals(result))
    console.print(Text(f"reproduce: {result.command}", style="dim"))


# -- files -------------------------------------------------------------------------
def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write atomically, so a reader never sees half a document."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


# -- recipes ---------------------------------------------------------------------
def _hunt_text(recipe: Recipe) -> str:
    hunts = [f"{h.kind.value} (good {h.good}, bad {h.bad})" for h in recipe.hunts]
    return "; ".join(hunts) or "none"


def format_recipe_list(recipes: list[Recipe]) -> str:
    width = max((len(r.id) for r in recipes), default=2)
    lines = [
        f"{r.id:<{width}}  {r.title}\n{'':<{width}}  symptom {','.join(k.value for k in r.symptom)}"
        f"; hunts: {_hunt_text(r)}"
        for r in recipes
    ]
    return "\n".join([*lines, _count(len(recipes), "recipe"), ""])


def format_recipe(recipe: Recipe) -> str:
    out = [f"{recipe.id}: {recipe.title}", "", recipe.description.strip(), ""]
    out.append(f"repro:    {recipe.repro}")
    out.append(f"symptom:  {', '.join(k.value for k in recipe.symptom)}")
    out.append(f"match:    {recipe.match or '(any)'}")
    out.append(f"timeout:  {recipe.timeout:g} s")
    out.append(
        f"flavour:  {recipe.flavour.value}"
        + (f" {' '.join(recipe.build_flags)}" if recipe.build_flags else "")
    )
    links = recipe.links
    out += [f"bpo-{n}: {bpo_url(n)}" for n in links.bpo]
    out += [f"gh-{n}: {gh_issue_url(n)}" for n in links.gh]
    out += [f"commit: {commit_url(c)}" for c in links.commits]
    out += [f"source: {s}" for s in links.sources]
    out += format_measurements(recipe.measured, recipe.not_measured)
    for number, hunt in enumerate(recipe.hunts, 1):
        culprit = f", culprit {hunt.culprit[:12]}" if hunt.culprit else ""
        out.append(f"hunt {number}: {hunt.kind.value}, good {hunt.good}, bad {hunt.bad}{culprit}")
        if hunt.note:
            out.append(f"  note: {hunt.note}")
    return "\n".join([*out, ""])


# -- past hunts ------------------------------------------------------------------
def format_hunt_list(hunts: list[HuntState]) -> str:
    lines = [
        f"{h.id}  {h.status:<11}  {h.kind:<10}  {h.repo}\n"
        f"{'':<22}  {h.answer or f'{len(h.visits)} visits so far'}"
        for h in hunts
    ]
    return "\n".join([*lines, _count(len(hunts), "hunt"), ""])


# -- compare ---------------------------------------------------------------------
def format_compare(result: CompareResult) -> str:
    rows = [["recipe", "A symptoms", "B symptoms", "verdict"]]
    for row in result.rows:
        note = row.a.skip_reason or row.b.skip_reason
        rows.append(
            [
                row.item.name,
                f"{row.a.symptoms}/{row.a.informative}",
                f"{row.b.symptoms}/{row.b.informative}",
                row.change.value + (f" ({note})" if note else ""),
            ]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    lines = [
        f"finbisect compare: A {result.a.short} {result.a.subject}",
        f"                   B {result.b.short} {result.b.subject}",
        "",
        *(
            "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[3]])
            for r in rows
        ),
        "",
        f"{'B regresses' if result.regressed else 'no regression'}; "
        f"{result.builds} builds; a clean side ran until a bug showing in >= {result.min_rate:.0%} "
        f"of runs would have shown with {result.confidence:.0%} probability",
        "",
    ]
    return "\n".join(lines)


def compare_to_json(result: CompareResult) -> dict[str, Any]:
    def side(s: Any) -> dict[str, Any]:
        return {"runs": s.runs, "symptoms": s.symptoms, "unrelated": s.unrelated}

    return {
        "version": COMPARE_VERSION,
        "a": result.a.sha,
        "b": result.b.sha,
        "rows": [
            {"recipe": r.item.name, "a": side(r.a), "b": side(r.b), "verdict": r.change.value}
            for r in result.rows
        ],
    }


# -- doctor ----------------------------------------------------------------------
def format_checks(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status.value:<4}  {check.name:<{width}}  {check.found}")
        if check.advice:
            lines.append(f"{'':<4}  {'':<{width}}  -> {check.advice}")
    failed = [c.name for c in checks if c.status is Status.FAIL]
    lines.append(
        f"cannot build: {', '.join(failed)} missing" if failed else "this machine can bisect"
    )
    return "\n".join([*lines, ""])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
