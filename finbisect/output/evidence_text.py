"""The evidence at the answer, for people: short lines for the terminal, a <details> for Markdown.

Works from the evidence's JSON (models cannot know runs' types); the frames that
matter are each thread's innermost few, with the culprit's changes named first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finbisect.models import Result
from finbisect.runs.evidence import Evidence

__all__ = ["evidence_lines", "evidence_markdown"]

NO_HITS = "the culprit changes none of the functions on these stacks"
SHORT_FRAMES = 4  # innermost telling C frames per thread on the terminal: where it is stuck


def _frame(f: Mapping[str, Any]) -> str:
    where = f" ({f['file']}:{f['line']})" if f.get("file") else ""
    return f"#{f['number']} {f['function']}{where}"


def _thread_label(t: Mapping[str, Any]) -> str:
    return str(t.get("label") or f"thread {t.get('number', '?')}")


def evidence_lines(result: Result) -> list[str]:
    """A few lines: the symptom's signature, where each thread is, and the culprit's frames."""
    if result.evidence is None:
        return [result.evidence_note] if result.evidence_note else []
    ev = result.evidence
    lines = [f"evidence at {str(ev['sha'])[:12]} ({ev['kind']}): {ev['signature']}"]
    lines += [f"  {hit}" for hit in result.evidence_hits] or [f"  {NO_HITS}"]
    for t in Evidence.from_json(ev).threads:
        telling = t.telling_frames()[:SHORT_FRAMES] or t.c_frames[:SHORT_FRAMES]
        frames = " < ".join(f"{f.function} #{f.number}" for f in telling)
        py = [f for f in t.python_frames if f.file][:1]
        where = f"; Python: {py[0].function} ({py[0].file}:{py[0].line})" if py else ""
        lines.append(f"  {t.label}: {frames}{where}")
    lines.append(f"  stacks: {ev['log']}")
    return lines


def evidence_markdown(result: Result) -> list[str]:
    """A collapsible section with every thread's frames; the culprit's frames above it."""
    if result.evidence is None:
        return [f"> {result.evidence_note}", ""] if result.evidence_note else []
    ev = result.evidence
    out = [f"Evidence at `{str(ev['sha'])[:12]}` ({ev['kind']}): `{ev['signature']}`", ""]
    out += [f"- {hit}" for hit in result.evidence_hits] or [f"- {NO_HITS}"]
    out.append("")
    out += ["<details>", f"<summary>Stacks of {len(ev['threads'])} threads (gdb)</summary>", ""]
    for t in ev["threads"]:
        out += [f"**{_thread_label(t)}**", "", "```"]
        out += [_frame(f) for f in t["c_frames"]]
        if t["python_frames"]:
            out.append("Python (innermost first):")
            out += [f"  {f['function']} ({f['file']}:{f['line']})" for f in t["python_frames"]]
        out += ["```", ""]
    out += ["</details>", ""]
    return out
