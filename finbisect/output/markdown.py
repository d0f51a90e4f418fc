"""Markdown for bug trackers: a comment ready to paste into a CPython GitHub issue.

Sibling of report.py (which formats for terminals): commits and issue
references become links, rates get intervals, and the build, the machine and
the command that reproduces the result are stated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from finbisect import __version__
from finbisect.hunt.compare import CompareResult
from finbisect.links import commit_url, issue_refs
from finbisect.models import Commit, Rate, Result, Step
from finbisect.output.evidence_text import evidence_markdown
from finbisect.output.terminal import posterior_chart
from finbisect.search.stats import rate_interval

__all__ = ["compare_markdown", "result_markdown"]


def _rate(symptoms: int, runs: int) -> str:
    if runs == 0:
        return "—"
    low, high = rate_interval(symptoms, runs)
    return f"{symptoms / runs:.0%} ({low:.0%}–{high:.0%})"


def _percent(rate: Rate) -> str:
    return f"{rate.estimate:.0%} (90% interval {rate.low:.0%}–{rate.high:.0%})"


def _commit_link(commit: Commit, linked: bool = True) -> str:
    """A link on GitHub for CPython's commits; the plain hash for any other history."""
    return f"[`{commit.short}`]({commit_url(commit.sha)})" if linked else f"`{commit.short}`"


def _refs(commit: Commit) -> str:
    return ", ".join(f"[{r['ref']}]({r['url']})" for r in issue_refs(commit.message))


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _machine(facts: Mapping[str, str]) -> str:
    return " · ".join(f"{key} {value}" for key, value in facts.items()) or "unknown"


def result_markdown(result: Result, machine: Mapping[str, str]) -> str:
    linked = result.cpython_links

    def link(commit: Commit) -> str:
        return _commit_link(commit, linked)

    out = []
    if result.culprit is not None:
        culprit = result.culprit
        out.append(f"### finbisect: {result.hunt.phrase} {link(culprit)}")
        out.append("")
        out.append(f"> **{_escape(culprit.subject)}**  ")
        out.append(
            f"> {_escape(culprit.author)} · {culprit.date}"
            + (f" · {_refs(culprit)}" if issue_refs(culprit.message) else "")
        )
    else:
        out.append(f"### finbisect: inconclusive {result.hunt.value} hunt")
        out.append("")
        out.append(f"The first {result.hunt.new_verdict.value} commit is one of:")
        out.append("")
        for commit, p in zip(result.candidates, result.padded_probabilities(), strict=True):
            share = f" — {p:.1%}" if p is not None else ""
            out.append(f"- {link(commit)} {_escape(commit.subject)}{share}")
    out.append("")
    summary = (
        f"Hunt: {result.hunt.value}, good {link(result.good)}, "
        f"bad {link(result.bad)}; {len(result.steps)} revisions tested, "
        f"{result.runs} runs, {result.builds} builds ({result.cached_builds} reused)"
    )
    if result.p is not None:
        summary += (
            f"; confidence {result.confidence:.3f}; symptom rate on the bad side "
            f"{_percent(result.p)}, assuming a revision without the bug never shows it"
        )
    if result.p_before is not None and result.p_after is not None:
        summary += (
            f"; confidence {result.confidence:.3f}; two-sided model: symptom rate "
            f"{_percent(result.p_before)} before the culprit, {_percent(result.p_after)} from it on"
        )
    out += [summary + ".", ""]
    out += [f"> {_escape(note)}" for note in result.notes] + ([""] if result.notes else [])
    out += evidence_markdown(result)
    out += _steps_table(result.steps, link)
    chart = posterior_chart(result)
    if chart:
        out += ["", "```", *chart, "```"]
    if result.timing_table:
        out += ["", "Timings (`pyperf compare_to` style):", "", result.timing_table]
    if result.slowdown is not None:
        ms, percent = result.slowdown.ms, result.slowdown.percent
        out += ["", f"Slowdown at the culprit: {ms:+.1f} ms ({percent:+.1f}%)"]
    out += [
        "",
        f"**Build:** {result.build or 'unknown'}  ",
        f"**Machine:** {_machine(machine)}",
        "",
        "Reproduce:",
        "```",
        result.command,
        "```",
        _footer(),
    ]
    return "\n".join(out) + "\n"


def _steps_table(steps: tuple[Step, ...], link: Callable[[Commit], str]) -> list[str]:
    rows = [
        "| # | commit | verdict | symptom runs | rate (90% interval) | reason |",
        "|---:|---|---|---:|---|---|",
    ]
    for number, step in enumerate(steps, 1):
        rows.append(
            f"| {number} | {link(step.commit)} | {step.verdict.value} | "
            f"{step.symptoms}/{step.runs} | {_rate(step.symptoms, step.runs)} | "
            f"{_escape(step.reason)} |"
        )
    return rows


def compare_markdown(result: CompareResult, machine: Mapping[str, str], command: str) -> str:
    verdict = "regressed" if result.regressed else "no regression"
    out = [
        f"### finbisect compare: {_commit_link(result.a, result.cpython_links)} (A) vs "
        f"{_commit_link(result.b, result.cpython_links)} (B):"
        f" {verdict}",
        "",
        f"A: {_escape(result.a.subject)}  ",
        f"B: {_escape(result.b.subject)}",
        "",
        "| recipe | A symptoms | A rate (90%) | B symptoms | B rate (90%) | verdict |",
        "|---|---:|---|---:|---|---|",
    ]
    for row in result.rows:
        a, b = row.a, row.b
        note = f" ({a.skip_reason or b.skip_reason})" if a.skip_reason or b.skip_reason else ""
        out.append(
            f"| {_escape(row.item.name)} | {a.symptoms}/{a.informative} | "
            f"{_rate(a.symptoms, a.informative)} | {b.symptoms}/{b.informative} | "
            f"{_rate(b.symptoms, b.informative)} | **{row.change.value}**{_escape(note)} |"
        )
    out += [
        "",
        f"A side with no symptom ran until a bug showing in at least {result.min_rate:.0%} of runs "
        f"would have shown with probability {result.confidence:.0%}.",
        "",
        f"**Builds:** {'; '.join(result.build_descriptions)}  ",
        f"**Machine:** {_machine(machine)}",
        "",
        "Reproduce:",
        "```",
        command,
        "```",
        _footer(),
    ]
    return "\n".join(out) + "\n"


def _footer() -> str:
    return (
        f"\n<sub>finbisect {__version__}. Unrelated failures are excluded by the symptom "
        "kinds and the match.</sub>"
    )
