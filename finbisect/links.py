"""CPython's addresses: issues (bpo-, gh-), pull requests (GH-) and commits, in one place."""

from __future__ import annotations

import re

__all__ = ["bpo_url", "commit_url", "gh_issue_url", "gh_pull_url", "issue_refs"]


def bpo_url(number: str | int) -> str:
    return f"https://bugs.python.org/issue{number}"


def gh_issue_url(number: str | int) -> str:
    return f"https://github.com/python/cpython/issues/{number}"


def gh_pull_url(number: str | int) -> str:
    return f"https://github.com/python/cpython/pull/{number}"


def commit_url(sha: str) -> str:
    return f"https://github.com/python/cpython/commit/{sha}"


# (pattern in a commit message, label, address); "Issue #N" is how bpo was cited before 2018.
_REF_PATTERNS = (
    (re.compile(r"\bbpo-(\d+)\b"), "bpo-{}", bpo_url),
    (re.compile(r"\bIssue #(\d+)\b", re.IGNORECASE), "bpo-{}", bpo_url),
    (re.compile(r"\bgh-(\d+)\b"), "gh-{}", gh_issue_url),
    (re.compile(r"\bGH-(\d+)\b"), "GH-{}", gh_pull_url),
)


def issue_refs(message: str) -> list[dict[str, str]]:
    """bpo-/Issue #/gh-/GH- references in a commit message, with links, in order of appearance."""
    found: dict[str, tuple[int, str]] = {}
    for pattern, label, url in _REF_PATTERNS:
        for m in pattern.finditer(message):
            found.setdefault(label.format(m.group(1)), (m.start(), url(m.group(1))))
    return [{"ref": ref, "url": url} for ref, (_, url) in sorted(found.items(), key=lambda x: x[1])]
