"""The evidence's lines for people: frames that matter, and what the culprit changes."""

from __future__ import annotations

from finbisect.models import Commit, HuntKind, Result
from finbisect.output.evidence_text import NO_HITS, evidence_lines, evidence_markdown

COMMIT = Commit(sha="c" * 40, subject="s", author="a", date="d", message="s")
EVIDENCE = {
    "version": 1, "sha": "c" * 40, "kind": "hang", "signature": "deadlocked: main thread in f",
    "threads": [{
        "pid": 1, "tid": 1, "number": 1, "name": "", "label": "main thread",
        "c_frames": [
            {"number": 0, "function": "futex_wait", "file": "../sysdeps/nptl/futex.h",
             "line": 1, "library": ""},
            {"number": 1, "function": "take_gil", "file": "Python/ceval_gil.c", "line": 9,
             "library": ""},
        ],
        "python_frames": [{"function": "wait", "file": "threading.py", "line": 3}],
    }],
    "log": "/x.log",
}  # fmt: skip


def _result(**extra: object) -> Result:
    return Result(hunt=HuntKind.REGRESSION, good=COMMIT, bad=COMMIT, culprit=COMMIT, **extra)  # type: ignore[arg-type]


def test_terminal_lines_skip_the_wait_plumbing_and_say_when_the_culprit_is_not_on_them() -> None:
    lines = evidence_lines(_result(evidence=EVIDENCE))
    assert lines[1] == f"  {NO_HITS}"
    assert lines[2] == "  main thread: take_gil #1; Python: wait (threading.py:3)"


def test_markdown_folds_every_frame_and_names_the_culprits_frames() -> None:
    hit = "the culprit changes take_gil(), frame #1 of the main thread"
    text = "\n".join(evidence_markdown(_result(evidence=EVIDENCE, evidence_hits=(hit,))))
    assert f"- {hit}" in text
    assert "<details>" in text
    assert "#0 futex_wait" in text


def test_without_evidence_the_note_alone() -> None:
    assert evidence_lines(_result(evidence_note="no evidence: gdb not found")) == [
        "no evidence: gdb not found"
    ]
    assert evidence_lines(_result()) == []
